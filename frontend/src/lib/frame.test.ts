import { describe, expect, it } from 'vitest';
import { FrameBatcher } from './frame';
import { manualFrames } from './testing';

describe('FrameBatcher', () => {
  it('coalesces many schedule calls into one flush per frame', () => {
    const frames = manualFrames();
    let flushes = 0;
    const b = new FrameBatcher(() => flushes++, frames.scheduler);
    for (let i = 0; i < 500; i++) b.schedule();
    expect(frames.pending()).toBe(1);
    expect(flushes).toBe(0);
    frames.run();
    expect(flushes).toBe(1);
    b.schedule();
    frames.run();
    expect(flushes).toBe(2);
  });

  it('does not flush after cancel', () => {
    const frames = manualFrames();
    let flushes = 0;
    const b = new FrameBatcher(() => flushes++, frames.scheduler);
    b.schedule();
    b.cancel();
    frames.run();
    b.schedule();
    frames.run();
    expect(flushes).toBe(0);
  });
});
