/** One sample of the Prometheus text format. */
export interface Sample {
  name: string;
  labels: Readonly<Record<string, string>>;
  value: number;
}

const LINE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+\S+)?$/;
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;

function unescape(v: string): string {
  return v.replace(/\\(.)/g, (_m, c: string) => (c === 'n' ? '\n' : c));
}

/** Parses `GET /metrics` (text exposition format 0.0.4); comments and bad lines are skipped. */
export function parseMetrics(text: string): Sample[] {
  const out: Sample[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const m = LINE.exec(line);
    if (m === null) continue;
    const [, name, labelText, valueText] = m as unknown as [string, string, string | undefined, string];
    const value = valueText === '+Inf' ? Infinity : valueText === '-Inf' ? -Infinity : Number(valueText);
    if (Number.isNaN(value)) continue;
    const labels: Record<string, string> = {};
    if (labelText !== undefined) {
      for (const lm of labelText.matchAll(LABEL)) labels[lm[1] as string] = unescape(lm[2] as string);
    }
    out.push({ name, labels, value });
  }
  return out;
}

/** The sum of a metric over the series whose labels match `where`; null if none. */
export function sumOf(
  samples: readonly Sample[],
  name: string,
  where: Readonly<Record<string, string>> = {},
): number | null {
  let total: number | null = null;
  for (const s of samples) {
    if (s.name !== name) continue;
    if (!Object.entries(where).every(([k, v]) => s.labels[k] === v)) continue;
    total = (total ?? 0) + s.value;
  }
  return total;
}

/**
 * Per-second rate of a counter between two scrapes `seconds` apart; null
 * without both values, and 0 across a reset (the daemon restarted).
 */
export function rate(before: number | null, after: number | null, seconds: number): number | null {
  if (before === null || after === null || seconds <= 0) return null;
  if (after < before) return 0;
  return (after - before) / seconds;
}
