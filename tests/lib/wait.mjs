//! Waiting in end-to-end tests: a sleep, and polling a probe until it returns something truthy.
export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Polls `probe` every `intervalMs` until it returns a truthy value, which is returned. */
export async function waitFor(what, probe, timeoutMs = 20_000, intervalMs = 200) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const value = await probe();
    if (value) return value;
    await sleep(intervalMs);
  }
  throw new Error(`timed out waiting for ${what}`);
}

/**
 * Waits, when fewer than `marginMs` are left in the clock's current minute, for the next one:
 * the local rate limiter (miniflare's) counts in fixed windows aligned to whole minutes, so a
 * burst that straddles a boundary is split between two windows and may never reach the limit.
 */
export async function withinOneRateWindow(marginMs = 20_000, windowMs = 60_000) {
  const left = windowMs - (Date.now() % windowMs);
  if (left < marginMs) await sleep(left + 50);
}
