import { FrameBatcher, animationFrame, type FrameScheduler } from './frame';
import {
  applyAlertList,
  applyMessage,
  applyStationList,
  draftOf,
  emptyState,
  type StationsDraft,
  type StationsState,
} from './stations';
import type { Alert, Reading, RollupMessage, ServerMessage, Station } from './types';

type Listener = () => void;
type ReadingListener = (r: Reading) => void;
type SnapshotListener = (count: number) => void;
type RollupListener = (m: RollupMessage) => void;

/** Seconds of history behind `readingRate`. */
const RATE_WINDOW_S = 10;

/**
 * Holds the station state outside React. Messages are applied at once to a
 * working copy (so memory stays bounded even while frames are paused in a
 * background tab), and subscribers are told at most once per frame.
 * Works with `useSyncExternalStore`.
 */
export class StationStore {
  private state: StationsState = emptyState;
  private draft: StationsDraft | null = null;
  private readonly listeners = new Set<Listener>();
  private readonly readingListeners = new Set<ReadingListener>();
  private readonly snapshotListeners = new Set<SnapshotListener>();
  private readonly rollupListeners = new Set<RollupListener>();
  private snapshots = 0;
  /** Readings received per whole second, over the last RATE_WINDOW_S seconds. */
  private readonly perSecond = new Float64Array(RATE_WINDOW_S + 1);
  private readonly secondOf = new Float64Array(RATE_WINDOW_S + 1).fill(-1);
  private readonly batcher: FrameBatcher;

  constructor(scheduler: FrameScheduler = animationFrame) {
    this.batcher = new FrameBatcher(() => this.publish(), scheduler);
  }

  /** The last published state; stable between frames. */
  getSnapshot = (): StationsState => this.state;

  subscribe = (listener: Listener): (() => void) => {
    this.listeners.add(listener);
    return () => {
      this.listeners.delete(listener);
    };
  };

  /** Readings are passed on immediately (for the chart's own batching). */
  onReading(listener: ReadingListener): () => void {
    this.readingListeners.add(listener);
    return () => {
      this.readingListeners.delete(listener);
    };
  }

  /** Rollup messages, for a chart showing rollups. */
  onRollup(listener: RollupListener): () => void {
    this.rollupListeners.add(listener);
    return () => {
      this.rollupListeners.delete(listener);
    };
  }

  /** Live readings per second over the last 10 s (whole seconds before `nowMs`). */
  readingRate(nowMs: number): number {
    const current = Math.floor(nowMs / 1000);
    let total = 0;
    for (let i = 0; i < this.perSecond.length; i++) {
      const sec = this.secondOf[i] as number;
      if (sec < current && sec >= current - RATE_WINDOW_S) total += this.perSecond[i] as number;
    }
    return total / RATE_WINDOW_S;
  }

  private countReading(nowMs: number): void {
    const sec = Math.floor(nowMs / 1000);
    const slot = sec % this.perSecond.length;
    if (this.secondOf[slot] !== sec) {
      this.secondOf[slot] = sec;
      this.perSecond[slot] = 0;
    }
    this.perSecond[slot] = (this.perSecond[slot] as number) + 1;
  }

  /**
   * Called for each websocket snapshot with the number received so far; a
   * count above 1 means the connection was re-established and live readings
   * may have been missed in between.
   */
  onSnapshot(listener: SnapshotListener): () => void {
    this.snapshotListeners.add(listener);
    return () => {
      this.snapshotListeners.delete(listener);
    };
  }

  ingest(msg: ServerMessage, nowMs: number = Date.now()): void {
    this.draft ??= draftOf(this.state);
    applyMessage(this.draft, msg);
    this.batcher.schedule();
    if (msg.type === 'reading') {
      this.countReading(nowMs);
      for (const l of this.readingListeners) l(msg.reading);
    } else if (msg.type === 'rollup') {
      for (const l of this.rollupListeners) l(msg);
    } else if (msg.type === 'snapshot') {
      this.snapshots++;
      for (const l of this.snapshotListeners) l(this.snapshots);
    }
  }

  /** First paint from `GET /api/v1/stations`; ignored after a websocket snapshot. */
  loadStations(list: readonly Station[]): void {
    this.load((base) => applyStationList(base, list));
  }

  /** Alerts from `GET /api/v1/alerts`, merged with the live ones. */
  loadAlerts(list: readonly Alert[]): void {
    this.load((base) => applyAlertList(base, list));
  }

  /** Applies a REST answer to the working copy; nothing to publish if it changed nothing. */
  private load(apply: (base: StationsState) => StationsState): void {
    const base = this.draft ?? this.state;
    const next = apply(base);
    if (next === base) return;
    this.draft = draftOf(next);
    this.batcher.schedule();
  }

  private publish(): void {
    if (this.draft === null) return;
    this.state = this.draft;
    this.draft = null;
    for (const l of this.listeners) l();
  }
}
