import { describe, expect, it } from 'vitest';
import { FrameBatcher, throttledFrames } from './frame';
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

describe('throttledFrames', () => {
  it('runs at once the first time, then no sooner than the interval after the last run', () => {
    let t = 1000;
    const delays: [() => void, number][] = [];
    const frames: (() => void)[] = [];
    const s = throttledFrames(
      250,
      (cb) => frames.push(cb),
      () => t,
      (cb, ms) => delays.push([cb, ms]),
    );
    let runs = 0;
    s(() => runs++);
    expect(frames).toHaveLength(1);
    frames.shift()?.();
    expect(runs).toBe(1);
    t = 1100;
    s(() => runs++);
    expect(frames).toHaveLength(0);
    expect(delays.map(([, ms]) => ms)).toEqual([150]);
    delays.shift()?.[0]();
    frames.shift()?.();
    expect(runs).toBe(2);
    t = 2000;
    s(() => runs++);
    expect(frames).toHaveLength(1);
  });
});
