import { backoffDelay } from './backoff';
import { withTicket } from './credential';
import { parseServerMessage } from './protocol';
import type { ServerMessage } from './types';

export type ConnectionState = 'connecting' | 'live' | 'reconnecting';

export interface ConnectionStatus {
  state: ConnectionState;
  /** Failed connections since the last good one. */
  attempt: number;
  /** While reconnecting: epoch ms of the next attempt. */
  retryAt: number | null;
}

/** The subset of the browser WebSocket this module uses. */
export interface SocketLike {
  onopen: ((ev: unknown) => void) | null;
  onmessage: ((ev: { data: unknown }) => void) | null;
  onclose: ((ev: unknown) => void) | null;
  onerror: ((ev: unknown) => void) | null;
  close(code?: number, reason?: string): void;
}

export interface LiveOptions {
  /** Called before each connection attempt, so it can follow the location. */
  url: () => string;
  /**
   * When reads are protected: a one-time ticket to add to the URL, asked
   * for before each connection attempt; `null` for none.
   */
  ticket?: () => Promise<string | null>;
  onMessage: (msg: ServerMessage) => void;
  onStatus?: (status: ConnectionStatus) => void;
  createSocket?: (url: string) => SocketLike;
  setTimer?: (cb: () => void, ms: number) => unknown;
  clearTimer?: (handle: unknown) => void;
  now?: () => number;
}

/**
 * Keeps one websocket to the live feed open, reconnecting with exponential
 * backoff (1 s doubling to 30 s). The backoff resets once a connection has
 * delivered a message, so a server that accepts and immediately drops
 * connections is still retried slowly.
 */
export class LiveConnection {
  private socket: SocketLike | null = null;
  private timer: unknown = null;
  private attempt = 0;
  private running = false;
  private status: ConnectionStatus = { state: 'connecting', attempt: 0, retryAt: null };

  private readonly createSocket: (url: string) => SocketLike;
  private readonly setTimer: (cb: () => void, ms: number) => unknown;
  private readonly clearTimer: (handle: unknown) => void;
  private readonly now: () => number;

  constructor(private readonly opts: LiveOptions) {
    this.createSocket = opts.createSocket ?? ((url) => new WebSocket(url) as unknown as SocketLike);
    this.setTimer = opts.setTimer ?? ((cb, ms) => setTimeout(cb, ms));
    this.clearTimer = opts.clearTimer ?? ((h) => clearTimeout(h as ReturnType<typeof setTimeout>));
    this.now = opts.now ?? Date.now;
  }

  getStatus(): ConnectionStatus {
    return this.status;
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.attempt = 0;
    this.connect();
  }

  stop(): void {
    this.running = false;
    if (this.timer !== null) {
      this.clearTimer(this.timer);
      this.timer = null;
    }
    const s = this.socket;
    this.socket = null;
    if (s !== null) {
      detach(s);
      s.close(1000, 'client closing');
    }
  }

  private setStatus(state: ConnectionState, retryAt: number | null): void {
    this.status = { state, attempt: this.attempt, retryAt };
    this.opts.onStatus?.(this.status);
  }

  private connect(): void {
    this.timer = null;
    if (!this.running) return;
    this.setStatus(this.attempt === 0 ? 'connecting' : 'reconnecting', null);
    const ticket = this.opts.ticket;
    if (ticket === undefined) {
      this.open(this.opts.url());
      return;
    }
    ticket().then(
      (t) => {
        if (this.running && this.socket === null && this.timer === null) this.open(withTicket(this.opts.url(), t));
      },
      () => {
        if (this.running && this.socket === null && this.timer === null) this.scheduleReconnect();
      },
    );
  }

  private open(url: string): void {
    let s: SocketLike;
    try {
      s = this.createSocket(url);
    } catch {
      this.scheduleReconnect();
      return;
    }
    this.socket = s;
    let delivered = false;

    s.onopen = () => {
      if (this.socket !== s) return;
      this.setStatus('live', null);
    };
    s.onmessage = (ev) => {
      if (this.socket !== s || typeof ev.data !== 'string') return;
      if (!delivered) {
        delivered = true;
        this.attempt = 0;
        if (this.status.state !== 'live' || this.status.attempt !== 0) this.setStatus('live', null);
      }
      const msg = parseServerMessage(ev.data);
      if (msg !== null) this.opts.onMessage(msg);
    };
    // A failed socket always fires close after error; reconnect from close only.
    s.onerror = () => {};
    s.onclose = () => {
      if (this.socket !== s) return;
      detach(s);
      this.socket = null;
      this.scheduleReconnect();
    };
  }

  private scheduleReconnect(): void {
    if (!this.running) return;
    const delay = backoffDelay(this.attempt);
    this.attempt++;
    this.setStatus('reconnecting', this.now() + delay);
    this.timer = this.setTimer(() => this.connect(), delay);
  }
}

function detach(s: SocketLike): void {
  s.onopen = null;
  s.onmessage = null;
  s.onclose = null;
  s.onerror = null;
}
