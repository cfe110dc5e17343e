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

/**
 * A frame scheduler that runs at most once per `minIntervalMs`: a call
 * sooner than that after the last run waits out the rest, then the next
 * frame. With 1,000 stations reporting every second, the overview
 * re-renders a few times a second rather than on every frame.
 */
export function throttledFrames(
  minIntervalMs: number,
  frame: FrameScheduler = animationFrame,
  now: () => number = () => performance.now(),
  delay: (cb: () => void, ms: number) => void = (cb, ms) => void setTimeout(cb, ms),
): FrameScheduler {
  let last = Number.NEGATIVE_INFINITY;
  return (cb) => {
    const run = () =>
      frame(() => {
        last = now();
        cb();
      });
    const wait = last + minIntervalMs - now();
    if (wait > 0) delay(run, wait);
    else run();
  };
}
