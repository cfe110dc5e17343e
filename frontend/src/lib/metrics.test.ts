import { describe, expect, it } from 'vitest';
import { parseMetrics, rate, sumOf } from './metrics';

const TEXT = `# HELP isobar_readings_stored_total Readings stored.
# TYPE isobar_readings_stored_total counter
isobar_readings_stored_total{backend="sqlite"} 120
isobar_quarantined_total{reason="malformed_json"} 2
isobar_quarantined_total{reason="out_of_range",note="a \\"quoted\\" value"} 3
isobar_processing_lag_seconds 0.25
isobar_store_query_seconds_bucket{le="+Inf"} 7
garbage line here
`;

describe('metrics', () => {
  const samples = parseMetrics(TEXT);

  it('parses samples with labels and skips comments and junk', () => {
    expect(samples).toHaveLength(5);
    expect(samples[0]).toEqual({ name: 'isobar_readings_stored_total', labels: { backend: 'sqlite' }, value: 120 });
    expect(samples[2]?.labels.note).toBe('a "quoted" value');
  });

  it('sums a metric over its series, or a filtered subset', () => {
    expect(sumOf(samples, 'isobar_quarantined_total')).toBe(5);
    expect(sumOf(samples, 'isobar_quarantined_total', { reason: 'malformed_json' })).toBe(2);
    expect(sumOf(samples, 'isobar_processing_lag_seconds')).toBe(0.25);
    expect(sumOf(samples, 'isobar_missing_total')).toBeNull();
  });

  it('computes counter rates, treating a reset as zero', () => {
    expect(rate(100, 150, 5)).toBe(10);
    expect(rate(150, 20, 5)).toBe(0);
    expect(rate(null, 20, 5)).toBeNull();
    expect(rate(1, 2, 0)).toBeNull();
  });
});
