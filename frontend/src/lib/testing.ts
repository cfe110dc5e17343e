import type { FrameScheduler } from './frame';

/** A frame scheduler that runs callbacks only when told to. */
export function manualFrames(): { scheduler: FrameScheduler; pending: () => number; run: () => void } {
  let queue: (() => void)[] = [];
  return {
    scheduler: (cb) => {
      queue.push(cb);
    },
    pending: () => queue.length,
    run: () => {
      const q = queue;
      queue = [];
      for (const cb of q) cb();
    },
  };
}
