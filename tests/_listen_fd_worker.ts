/**
 * A worker for tests/deno_listener_fd_test.ts: opens and closes listeners on one port as fast
 * as it can for a while, each through `listenWithDescriptor`, and counts whether the descriptor
 * it was given is its own listener (its address), another thread's, or none.
 *
 * @module
 */

import { listenWithDescriptor } from "../server/adapters/_deno_listener_fd.ts";

interface Start {
  host: string;
  port: number;
  lock: SharedArrayBuffer;
  millis: number;
}

const libc = Deno.dlopen("libc.so.6", {
  getsockname: { parameters: ["i32", "buffer", "buffer"], result: "i32" },
}).symbols;

/** The IPv4 address `fd` is bound to, or null. */
function boundHost(fd: number): string | null {
  const address = new Uint8Array(16);
  const length = new Uint8Array(new Uint32Array([16]).buffer);
  if (libc.getsockname(fd, address, length) !== 0) return null;
  return address.slice(4, 8).join(".");
}

const scope = globalThis as unknown as {
  onmessage: (event: MessageEvent<Start>) => void;
  postMessage(message: { own: number; none: number; wrong: number }): void;
};

scope.onmessage = (event) => {
  const { host, port, millis } = event.data;
  const lock = new Int32Array(event.data.lock);
  const counts = { own: 0, none: 0, wrong: 0 };
  const until = Date.now() + millis;
  while (Date.now() < until) {
    const { listener, fd } = listenWithDescriptor(
      lock,
      () => Deno.listen({ hostname: host, port, reusePort: true }),
    );
    if (fd < 0) counts.none++;
    else if (boundHost(fd) === host) counts.own++;
    else counts.wrong++;
    listener.close();
  }
  scope.postMessage(counts);
};
