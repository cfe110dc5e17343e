import { describe, expect, it } from 'vitest';
import { authHeaders, readKey, saveReadKey, withTicket, type KeyStorage } from './credential';
import { LiveConnection, type SocketLike } from './live';

function memory(): KeyStorage & { items: Map<string, string> } {
  const items = new Map<string, string>();
  return {
    items,
    getItem: (k) => items.get(k) ?? null,
    setItem: (k, v) => void items.set(k, v),
    removeItem: (k) => void items.delete(k),
  };
}

describe('the read key', () => {
  it('is kept trimmed, and cleared by an empty one', () => {
    const store = memory();
    expect(readKey(store)).toBeNull();
    saveReadKey('  read-key-0123456789 ', store);
    expect(readKey(store)).toBe('read-key-0123456789');
    saveReadKey('', store);
    expect(readKey(store)).toBeNull();
    expect(store.items.size).toBe(0);
  });

  it('goes as a bearer token, and not at all without one', () => {
    expect(authHeaders('k')).toEqual({ Authorization: 'Bearer k' });
    expect(authHeaders(null)).toEqual({});
  });

  it('adds a ticket to the websocket URL, keeping its parameters', () => {
    expect(withTicket('ws://h/api/v1/live', null)).toBe('ws://h/api/v1/live');
    expect(withTicket('ws://h/api/v1/live', 'a b')).toBe('ws://h/api/v1/live?ticket=a%20b');
    expect(withTicket('ws://h/api/v1/live?stations=WS1', 't')).toBe('ws://h/api/v1/live?stations=WS1&ticket=t');
  });
});

describe('a live connection with tickets', () => {
  it('buys a fresh ticket before each connection, and retries when it cannot', async () => {
    const urls: string[] = [];
    const sockets: (SocketLike & { fail(): void })[] = [];
    const timers: (() => void)[] = [];
    let n = 0;
    const conn = new LiveConnection({
      url: () => 'ws://h/api/v1/live',
      ticket: () => {
        n += 1;
        return n === 2 ? Promise.reject(new Error('401')) : Promise.resolve(`t${n}`);
      },
      onMessage: () => {},
      createSocket: (url) => {
        urls.push(url);
        const s = {
          onopen: null,
          onmessage: null,
          onclose: null as ((ev: unknown) => void) | null,
          onerror: null,
          close() {},
          fail() {
            this.onclose?.({});
          },
        };
        sockets.push(s);
        return s;
      },
      setTimer: (cb) => timers.push(cb),
      clearTimer: () => {},
      now: () => 0,
    });
    conn.start();
    await Promise.resolve();
    expect(urls).toEqual(['ws://h/api/v1/live?ticket=t1']);
    // The connection drops: the next ticket is refused, so it waits and
    // tries again, with a new ticket.
    sockets[0]!.fail();
    timers.shift()!();
    await Promise.resolve();
    await Promise.resolve();
    expect(urls).toHaveLength(1);
    expect(conn.getStatus().state).toBe('reconnecting');
    timers.shift()!();
    await Promise.resolve();
    expect(urls).toEqual(['ws://h/api/v1/live?ticket=t1', 'ws://h/api/v1/live?ticket=t3']);
    conn.stop();
  });
});
