/**
 * Test fixture: ports on 127.0.0.1 for the programs a test starts that cannot bind port 0 and say
 * which port they got (Redis, etcd, HAProxy, nginx), and waiting until one listens.
 *
 * @module
 */

import type { ChildProcess } from "node:child_process";
import { connect, createServer } from "node:net";
import { waitUntil } from "./_wait.ts";

/**
 * A port on 127.0.0.1 that was free a moment ago (the kernel's pick for port 0, then released).
 *
 * @returns The port.
 */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      const port = typeof address === "object" && address !== null ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

/** Whether a connection to 127.0.0.1:`port` is accepted now. */
function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, "127.0.0.1");
    socket.on("connect", () => {
      socket.destroy();
      resolve(true);
    });
    socket.on("error", () => resolve(false));
  });
}

/**
 * Waits until `child` accepts connections on `port`; fails at once, with its output, when it
 * exits first, and after 10 s when it never listens.
 *
 * @param port The port it was told to listen on.
 * @param child The program.
 * @param output What it printed so far, for the error.
 * @param ready Whether it is ready now; by default, whether it accepts a connection.
 */
export async function waitForListener(
  port: number,
  child: ChildProcess,
  output: () => string,
  ready: (port: number) => Promise<boolean> = accepts,
): Promise<void> {
  const exited = () => child.exitCode !== null || child.signalCode !== null;
  await waitUntil(async () => exited() || await ready(port), {
    what: `${child.spawnfile} listening on ${port} (output: ${output()})`,
    timeoutMs: 10_000,
    everyMs: 50,
  });
  if (exited()) throw new Error(`${child.spawnfile} exited: ${output()}`);
}
