export const BACKOFF_INITIAL_MS = 1_000;
export const BACKOFF_MAX_MS = 30_000;

/**
 * Delay before reconnect attempt number `attempt` (0 for the first retry):
 * 1 s, 2 s, 4 s, ... capped at 30 s.
 */
export function backoffDelay(
  attempt: number,
  initialMs: number = BACKOFF_INITIAL_MS,
  maxMs: number = BACKOFF_MAX_MS,
): number {
  const n = Math.max(0, Math.floor(attempt));
  // 2 ** n overflows to Infinity long before it matters; min() keeps the cap.
  return Math.min(maxMs, initialMs * 2 ** Math.min(n, 30));
}
