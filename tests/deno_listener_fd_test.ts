/**
 * The descriptor the Deno adapter names for a listener it opens (server/adapters/
 * _deno_listener_fd.ts) is that listener's, never another thread's, while the threads of a
 * process open listeners on one port at once: naming another's would quiet a listener that stays
 * open (every handshake's last ACK dropped). Races many times: two workers open and close
 * listeners on the same port, on 127.0.0.1 and 127.0.0.2, for 2 s each run, and each checks the
 * address of the descriptor it was given; a third opens and closes files the whole time, taking
 * the descriptor a listen was expecting. Deno only: Bun's listeners say their descriptor.
 *
 * @module
 */

import assert from "node:assert/strict";
import { test } from "node:test";

const deno = !("Bun" in globalThis);

interface Counts {
  own: number;
  none: number;
  wrong: number;
}

/** Runs the two listening workers (sharing `locks` as given) beside a descriptor churn. */
async function race(locks: [SharedArrayBuffer, SharedArrayBuffer], millis: number) {
  const probe = Deno.listen({ hostname: "127.0.0.1", port: 0, reusePort: true });
  const port = (probe.addr as Deno.NetAddr).port;
  probe.close();
  const url = new URL("./_listen_fd_worker.ts", import.meta.url).href;
  const workers = [new Worker(url, { type: "module" }), new Worker(url, { type: "module" })];
  const results = workers.map((worker) =>
    new Promise<Counts>((resolve, reject) => {
      worker.onmessage = (event: MessageEvent<Counts>) => resolve(event.data);
      worker.onerror = (event) => reject(new Error(event.message));
    })
  );
  workers.forEach((worker, i) =>
    worker.postMessage({ host: `127.0.0.${i + 1}`, port, lock: locks[i], millis })
  );
  // Descriptors opened and closed on this thread meanwhile: a listen's expected one is taken.
  const until = Date.now() + millis;
  while (Date.now() < until) {
    Deno.openSync("/dev/null").close();
    await new Promise((resolve) => setTimeout(resolve, 0));
  }
  try {
    return await Promise.all(results);
  } finally {
    for (const worker of workers) worker.terminate();
  }
}

test(
  "[deno] listener descriptor: two threads opening listeners on one port at once are each named their own, never the other's",
  { skip: deno ? false : "Bun's listeners say their descriptor" },
  async () => {
    const shared = new SharedArrayBuffer(4);
    const counts = await race([shared, shared], 2000);
    // The lock's work, shown: each thread with a lock of its own (no turns taken).
    const unshared = await race([new SharedArrayBuffer(4), new SharedArrayBuffer(4)], 1000);
    console.log(
      `[deno] two threads, turns taken: ${JSON.stringify(counts)}; ` +
        `without turns: ${JSON.stringify(unshared)}`,
    );
    for (const count of counts) {
      assert.equal(count.wrong, 0, "never another thread's listener");
      assert.ok(count.own > count.none, `named its own in most listens: ${JSON.stringify(count)}`);
    }
  },
);
