import type { Units } from './units';

export type Theme = 'dark' | 'light';

export interface Prefs {
  units: Units;
  theme: Theme;
}

/** The subset of `localStorage` used here. */
export interface KeyValue {
  getItem(key: string): string | null;
  setItem(key: string, value: string): void;
}

const UNITS_KEY = 'isobar.units';
const THEME_KEY = 'isobar.theme';

/**
 * The operator's choices, remembered by the browser. Without one, units
 * are metric and the theme follows the system's preference.
 */
export function loadPrefs(storage: KeyValue | null, prefersLight: boolean): Prefs {
  let units: Units = 'metric';
  let theme: Theme = prefersLight ? 'light' : 'dark';
  try {
    const u = storage?.getItem(UNITS_KEY);
    if (u === 'metric' || u === 'imperial') units = u;
    const t = storage?.getItem(THEME_KEY);
    if (t === 'dark' || t === 'light') theme = t;
  } catch {
    // Storage disabled (private mode, policy): defaults.
  }
  return { units, theme };
}

export function savePrefs(storage: KeyValue | null, prefs: Prefs): void {
  try {
    storage?.setItem(UNITS_KEY, prefs.units);
    storage?.setItem(THEME_KEY, prefs.theme);
  } catch {
    // Not remembered; the choice still holds for this page.
  }
}
