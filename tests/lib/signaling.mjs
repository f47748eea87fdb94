//! A raw signaling client for end-to-end tests: speaks Twilio's frames to sim/twilio over a
//! WebSocket, sends frames, awaits frames by type, and keeps everything it received.
import { sleep } from "./wait.mjs";

export async function connectSignaling(signalingUrl) {
  const socket = new WebSocket(signalingUrl);
  const received = [];
  const all = [];
  const waiters = [];
  socket.addEventListener("message", (event) => {
    if (event.data === "\n") return;
    const frame = JSON.parse(event.data);
    all.push(frame);
    const waiter = waiters.find((w) => w.type === frame.type);
    if (waiter) {
      waiters.splice(waiters.indexOf(waiter), 1);
      waiter.resolve(frame);
    } else {
      received.push(frame);
    }
  });
  const closed = new Promise((resolve) => socket.addEventListener("close", resolve));
  await new Promise((resolve, reject) => {
    socket.addEventListener("open", resolve, { once: true });
    socket.addEventListener("error", reject, { once: true });
  });
  const send = (type, payload) => socket.send(JSON.stringify({ type, version: "1.6", payload }));
  const next = (type, timeoutMs = 15_000) => {
    const already = received.findIndex((f) => f.type === type);
    if (already >= 0) return Promise.resolve(received.splice(already, 1)[0]);
    return Promise.race([
      new Promise((resolve) => waiters.push({ type, resolve })),
      sleep(timeoutMs).then(() => { throw new Error(`no ${type} frame; got ${JSON.stringify(all.map((f) => f.type))}`); }),
    ]);
  };
  return { socket, send, next, received, all, closed };
}
