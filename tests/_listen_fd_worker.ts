/**
 * A worker for tests/deno_listener_fd_test.ts: opens and closes listeners on one port as fast
 * as it can for a while, each through `listenWithDescriptor`, and counts whether the descriptor
 * it was given is its own listener, another thread's, or none. Another thread's shows as a
 * descriptor bound to another address, or as one another thread holds named: `owners` (one Int32
 * a descriptor, shared by the workers) says which thread named each descriptor whose listener
 * is open.
 *
 * @module
 */

import { listenWithDescriptor } from "../server/adapters/_deno_listener_fd.ts";

interface Start {
  host: string;
  port: number;
  lock: SharedArrayBuffer;
  holder: number;
  owners: SharedArrayBuffer;
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
  const { host, port, holder, millis } = event.data;
  const turns = { lock: new Int32Array(event.data.lock), holder };
  const owners = new Int32Array(event.data.owners);
  const counts = { own: 0, none: 0, wrong: 0 };
  const until = Date.now() + millis;
  while (Date.now() < until) {
    const { listener, fd } = listenWithDescriptor(
      turns,
      () => Deno.listen({ hostname: host, port, reusePort: true }),
    );
    let named = false;
    if (fd < 0) counts.none++;
    else if (boundHost(fd) !== host) counts.wrong++;
    else if (Atomics.compareExchange(owners, fd, 0, holder) !== 0) counts.wrong++;
    else {
      counts.own++;
      named = true;
    }
    // Given up before the close: the descriptor is not free until it has closed.
    if (named) Atomics.store(owners, fd, 0);
    listener.close();
  }
  scope.postMessage(counts);
};
