//! Headless Debian Chromium through playwright-core, with fake media devices, for end-to-end tests.
import { chromium } from "playwright-core";

export const CHROMIUM_ARGS = [
  "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
  "--disable-background-networking", "--disable-component-update", "--disable-sync",
  "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
  "--allow-loopback-in-peer-connection", "--autoplay-policy=no-user-gesture-required",
];

/**
 * Launches Chromium. `fakeMediaUi: false` leaves permission prompts real, so the microphone's
 * permission state stays "prompt" (with the fake UI, Chromium reports it as granted).
 */
export async function launchBrowser({ fakeMediaUi = true } = {}) {
  const args = fakeMediaUi ? CHROMIUM_ARGS : CHROMIUM_ARGS.filter((a) => a !== "--use-fake-ui-for-media-stream");
  return chromium.launch({
    executablePath: process.env.CHROMIUM_BIN ?? "/usr/bin/chromium",
    args,
  });
}

/** Opens a page that records console errors and CSP violations into `problems`. */
export async function openPage(context, url) {
  const page = await context.newPage();
  const problems = [];
  page.on("console", (message) => {
    if (message.type() === "error") problems.push(message.text());
  });
  page.on("pageerror", (error) => problems.push(String(error)));
  await page.goto(url);
  return { page, problems };
}
