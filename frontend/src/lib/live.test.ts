import { describe, expect, it } from 'vitest';
import { LiveConnection, type ConnectionStatus, type SocketLike } from './live';
import type { ServerMessage } from './types';

class FakeSocket implements SocketLike {
  onopen: ((ev: unknown) => void) | null = null;
  onmessage: ((ev: { data: unknown }) => void) | null = null;
  onclose: ((ev: unknown) => void) | null = null;
  onerror: ((ev: unknown) => void) | null = null;
  closed = false;
  constructor(readonly url: string) {}
  close(): void {
    this.closed = true;
  }
  open(): void {
    this.onopen?.({});
  }
  send(data: unknown): void {
    this.onmessage?.({ data });
  }
  fail(): void {
    this.onerror?.({});
    this.onclose?.({});
  }
}

function harness() {
  const sockets: FakeSocket[] = [];
  const timers: { cb: () => void; ms: number; cleared: boolean }[] = [];
  const statuses: ConnectionStatus[] = [];
  const messages: ServerMessage[] = [];
  let clock = 0;
  const conn = new LiveConnection({
    url: () => 'ws://test/api/v1/live',
    onMessage: (m) => messages.push(m),
    onStatus: (s) => statuses.push(s),
    createSocket: (url) => {
      const s = new FakeSocket(url);
      sockets.push(s);
      return s;
    },
    setTimer: (cb, ms) => {
      const t = { cb, ms, cleared: false };
      timers.push(t);
      return t;
    },
    clearTimer: (h) => {
      (h as { cleared: boolean }).cleared = true;
    },
    now: () => clock,
  });
  /** Fires the most recent pending timer. */
  const fire = () => {
    const t = timers.at(-1);
    if (t === undefined || t.cleared) throw new Error('no pending timer');
    clock += t.ms;
    t.cb();
  };
  const socket = () => {
    const s = sockets.at(-1);
    if (s === undefined) throw new Error('no socket');
    return s;
  };
  return { conn, sockets, timers, statuses, messages, fire, socket };
}

const snapshot = '{"type":"snapshot","stations":[]}';

describe('LiveConnection', () => {
  it('goes connecting → live and forwards parsed messages', () => {
    const h = harness();
    h.conn.start();
    expect(h.conn.getStatus().state).toBe('connecting');
    expect(h.socket().url).toBe('ws://test/api/v1/live');
    h.socket().open();
    expect(h.conn.getStatus().state).toBe('live');
    h.socket().send(snapshot);
    h.socket().send('{"type":"overflow","dropped":2}');
    h.socket().send('{"type":"station_status","station_id":"WS001"}'); // unknown: ignored
    h.socket().send('garbage');
    expect(h.messages).toEqual([
      { type: 'snapshot', stations: [], complete: true },
      { type: 'overflow', dropped: 2 },
    ]);
  });

  it('reconnects with delays of 1, 2, 4, ... s capped at 30 s', () => {
    const h = harness();
    h.conn.start();
    const delays: number[] = [];
    for (let i = 0; i < 8; i++) {
      h.socket().fail();
      expect(h.conn.getStatus().state).toBe('reconnecting');
      delays.push(h.timers.at(-1)!.ms);
      h.fire();
    }
    expect(delays).toEqual([1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000]);
    expect(h.sockets).toHaveLength(9);
  });

  it('reports when the next attempt is due', () => {
    const h = harness();
    h.conn.start();
    h.socket().fail();
    expect(h.conn.getStatus()).toEqual({ state: 'reconnecting', attempt: 1, retryAt: 1000 });
  });

  it('resets the backoff once a connection delivers a message', () => {
    const h = harness();
    h.conn.start();
    h.socket().fail();
    h.fire();
    h.socket().fail();
    h.fire();
    expect(h.timers.at(-1)!.ms).toBe(2000);
    h.socket().open();
    h.socket().send(snapshot);
    h.socket().fail();
    expect(h.timers.at(-1)!.ms).toBe(1000);
  });

  it('does not reset the backoff for connections that open and drop without data', () => {
    const h = harness();
    h.conn.start();
    h.socket().open();
    h.socket().fail();
    h.fire();
    h.socket().open();
    h.socket().fail();
    expect(h.timers.map((t) => t.ms)).toEqual([1000, 2000]);
  });

  it('retries when the socket cannot be constructed', () => {
    let calls = 0;
    const timers: number[] = [];
    const conn = new LiveConnection({
      url: () => 'ws://x',
      onMessage: () => {},
      createSocket: () => {
        calls++;
        throw new Error('blocked');
      },
      setTimer: (_cb, ms) => {
        timers.push(ms);
        return ms;
      },
      clearTimer: () => {},
    });
    conn.start();
    expect(calls).toBe(1);
    expect(conn.getStatus().state).toBe('reconnecting');
    expect(timers).toEqual([1000]);
  });

  it('stop closes the socket, cancels the retry and ignores late events', () => {
    const h = harness();
    h.conn.start();
    h.socket().fail();
    const pending = h.timers.at(-1)!;
    h.conn.stop();
    expect(pending.cleared).toBe(true);

    h.conn.start();
    const s = h.socket();
    s.open();
    h.conn.stop();
    expect(s.closed).toBe(true);
    const before = h.timers.length;
    s.fail();
    s.send(snapshot);
    expect(h.timers.length).toBe(before);
    expect(h.messages).toEqual([]);
  });

  it('ignores binary frames', () => {
    const h = harness();
    h.conn.start();
    h.socket().send(new ArrayBuffer(4));
    expect(h.messages).toEqual([]);
  });
});
