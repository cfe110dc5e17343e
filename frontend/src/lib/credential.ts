/**
 * The read key a dashboard user gave, for a daemon whose reads are
 * protected (`web.auth.protect_reads`): sent as a bearer token with every
 * REST call, and traded for a one-time ticket before each websocket
 * connection, since a browser cannot put a header on a websocket.
 */
const STORAGE_KEY = 'isobar.readKey';

/** The subset of Storage this module uses. */
export interface KeyStorage {
  getItem(key: string): string | null;
  setItem(key: string, value: string): void;
  removeItem(key: string): void;
}

function storage(): KeyStorage | null {
  try {
    return window.localStorage;
  } catch {
    return null;
  }
}

export function readKey(store: KeyStorage | null = storage()): string | null {
  const key = store?.getItem(STORAGE_KEY) ?? null;
  return key !== null && key.trim() !== '' ? key.trim() : null;
}

export function saveReadKey(key: string | null, store: KeyStorage | null = storage()): void {
  if (store === null) return;
  if (key === null || key.trim() === '') store.removeItem(STORAGE_KEY);
  else store.setItem(STORAGE_KEY, key.trim());
}

/** The header that carries the key, if one was given. */
export function authHeaders(key: string | null = readKey()): Record<string, string> {
  return key === null ? {} : { Authorization: `Bearer ${key}` };
}

/** The websocket URL with a ticket, keeping its other parameters. */
export function withTicket(url: string, ticket: string | null): string {
  if (ticket === null) return url;
  const sep = url.includes('?') ? '&' : '?';
  return `${url}${sep}ticket=${encodeURIComponent(ticket)}`;
}
