import { FrameBatcher, animationFrame, type FrameScheduler } from './frame';
import {
  applyMessage,
  applyStationList,
  draftOf,
  emptyState,
  type StationsDraft,
  type StationsState,
} from './stations';
import type { Reading, ServerMessage, Station } from './types';

type Listener = () => void;
type ReadingListener = (r: Reading) => void;
type SnapshotListener = (count: number) => void;

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
  private snapshots = 0;
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

  ingest(msg: ServerMessage): void {
    this.draft ??= draftOf(this.state);
    applyMessage(this.draft, msg);
    this.batcher.schedule();
    if (msg.type === 'reading') {
      for (const l of this.readingListeners) l(msg.reading);
    } else if (msg.type === 'snapshot') {
      this.snapshots++;
      for (const l of this.snapshotListeners) l(this.snapshots);
    }
  }

  /** First paint from `GET /api/v1/stations`; ignored after a websocket snapshot. */
  loadStations(list: readonly Station[]): void {
    const base = this.draft ?? this.state;
    const next = applyStationList(base, list);
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
