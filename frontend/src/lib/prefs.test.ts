import { describe, expect, it } from 'vitest';
import { loadPrefs, savePrefs, type KeyValue } from './prefs';

function memory(): KeyValue & { data: Map<string, string> } {
  const data = new Map<string, string>();
  return { data, getItem: (k) => data.get(k) ?? null, setItem: (k, v) => void data.set(k, v) };
}

describe('prefs', () => {
  it('defaults to metric and the system’s theme', () => {
    expect(loadPrefs(memory(), false)).toEqual({ units: 'metric', theme: 'dark' });
    expect(loadPrefs(null, true)).toEqual({ units: 'metric', theme: 'light' });
  });

  it('remembers the operator’s choice', () => {
    const m = memory();
    savePrefs(m, { units: 'imperial', theme: 'light' });
    expect(loadPrefs(m, false)).toEqual({ units: 'imperial', theme: 'light' });
  });

  it('ignores stored nonsense and storage that throws', () => {
    const m = memory();
    m.data.set('isobar.units', 'furlongs');
    expect(loadPrefs(m, false).units).toBe('metric');
    const broken: KeyValue = {
      getItem: () => {
        throw new Error('denied');
      },
      setItem: () => {
        throw new Error('denied');
      },
    };
    expect(loadPrefs(broken, true)).toEqual({ units: 'metric', theme: 'light' });
    expect(() => savePrefs(broken, { units: 'metric', theme: 'dark' })).not.toThrow();
  });
});
