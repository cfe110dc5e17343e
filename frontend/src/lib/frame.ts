/** Schedules a callback for the next frame; `requestAnimationFrame` in the browser. */
export type FrameScheduler = (cb: () => void) => void;

export const animationFrame: FrameScheduler = (cb) => {
  requestAnimationFrame(() => cb());
};

/**
 * Coalesces any number of `schedule()` calls into one `flush()` on the next
 * frame, so a burst of messages costs one render.
 */
export class FrameBatcher {
  private pending = false;
  private cancelled = false;

  constructor(
    private readonly flush: () => void,
    private readonly scheduler: FrameScheduler = animationFrame,
  ) {}

  schedule(): void {
    if (this.pending || this.cancelled) return;
    this.pending = true;
    this.scheduler(() => {
      this.pending = false;
      if (!this.cancelled) this.flush();
    });
  }

  /** Drops any scheduled flush and ignores further schedule() calls. */
  cancel(): void {
    this.cancelled = true;
  }
}
