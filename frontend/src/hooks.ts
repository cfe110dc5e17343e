import { createContext, useContext, useEffect, useState } from 'react';
import type { Prefs } from './lib/prefs';
import { parseRoute, type Route } from './lib/route';

/** Current time in epoch ms, refreshed every `intervalMs`. */
export function useNow(intervalMs: number): number {
  const [now, setNow] = useState(() => Date.now());
  useEffect(() => {
    const id = setInterval(() => setNow(Date.now()), intervalMs);
    return () => clearInterval(id);
  }, [intervalMs]);
  return now;
}

/** The view the URL fragment names; follows back and forward. */
export function useRoute(): Route {
  const [route, setRoute] = useState(() => parseRoute(window.location.hash));
  useEffect(() => {
    const onChange = () => setRoute(parseRoute(window.location.hash));
    window.addEventListener('hashchange', onChange);
    return () => window.removeEventListener('hashchange', onChange);
  }, []);
  return route;
}

export const PrefsContext = createContext<Prefs>({ units: 'metric', theme: 'dark' });

export function usePrefs(): Prefs {
  return useContext(PrefsContext);
}

/**
 * Polls `load` every `intervalMs` while mounted (and at once), keeping the
 * last good value; an error is reported alongside it.
 */
export function usePolled<T>(
  load: (signal: AbortSignal) => Promise<T>,
  intervalMs: number,
  deps: readonly unknown[],
): { value: T | null; error: string | null; reload: () => void } {
  const [value, setValue] = useState<T | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [tick, setTick] = useState(0);
  useEffect(() => {
    const ac = new AbortController();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const run = () => {
      load(ac.signal).then(
        (v) => {
          if (ac.signal.aborted) return;
          setValue(v);
          setError(null);
          timer = setTimeout(run, intervalMs);
        },
        (err: unknown) => {
          if (ac.signal.aborted) return;
          setError(err instanceof Error ? err.message : String(err));
          timer = setTimeout(run, intervalMs);
        },
      );
    };
    run();
    return () => {
      ac.abort();
      clearTimeout(timer);
    };
    // `load` may be a new function each render: `deps` say when it changed.
  }, [intervalMs, tick, ...deps]);
  return { value, error, reload: () => setTick((t) => t + 1) };
}
