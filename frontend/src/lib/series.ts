/** The history a station page's live charts start from. */
export const HISTORY_WINDOW_MS = 15 * 60 * 1000;
/** Largest page the readings endpoint serves. */
export const HISTORY_LIMIT = 10_000;

/** The [from, to] range of the history request made at `nowMs`. */
export function historyRange(nowMs: number): { from: Date; to: Date } {
  // `to` sits a minute ahead so a browser clock running behind the
  // server's does not cut off the newest stored readings.
  return { from: new Date(nowMs - HISTORY_WINDOW_MS), to: new Date(nowMs + 60_000) };
}
