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
