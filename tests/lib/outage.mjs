//! A loopback TCP proxy that can be switched off and on, to take a service "down" for a while
//! without losing its state (sim/medplum keeps its data; only the network path fails).
import { createServer, connect } from "node:net";

/** Proxies 127.0.0.1:<port> → 127.0.0.1:<targetPort>. Returns {port, url, down(), stall(), up(), close()}. */
export async function startSwitchableProxy(targetPort) {
  let isDown = false;
  let isStalled = false;
  const open = new Set();
  const held = new Set();
  const server = createServer((client) => {
    if (isDown) {
      client.destroy();
      return;
    }
    if (isStalled) {
      // Accepted and read, never answered: a service that hangs rather than fails.
      held.add(client);
      client.on("data", () => {}).on("error", () => held.delete(client)).on("close", () => held.delete(client));
      return;
    }
    const upstream = connect(targetPort, "127.0.0.1");
    const pair = { client, upstream };
    open.add(pair);
    const end = () => {
      client.destroy();
      upstream.destroy();
      open.delete(pair);
    };
    client.on("error", end).on("close", end);
    upstream.on("error", end).on("close", end);
    client.pipe(upstream);
    upstream.pipe(client);
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = server.address().port;
  return {
    port,
    url: `http://127.0.0.1:${port}`,
    /** Refuses new connections and cuts the open ones, as an outage would. */
    down() {
      isDown = true;
      for (const { client, upstream } of open) { client.destroy(); upstream.destroy(); }
      open.clear();
    },
    up() {
      if (isStalled) {
        // The stalled connections stay unanswered: cut them, as the stall's end would.
        for (const { client, upstream } of open) { client.destroy(); upstream.destroy(); }
        open.clear();
        for (const client of held) client.destroy();
        held.clear();
      }
      isDown = false;
      isStalled = false;
    },
    /** Answers nothing more: new connections are accepted and never answered, and what arrives
     * on open (kept-alive) ones is no longer passed on. */
    stall() {
      isStalled = true;
      for (const { client, upstream } of open) {
        client.unpipe(upstream);
        client.on("data", () => {});
      }
    },
    close: () => new Promise((resolve) => {
      for (const { client, upstream } of open) { client.destroy(); upstream.destroy(); }
      for (const client of held) client.destroy();
      server.close(resolve);
    }),
  };
}
