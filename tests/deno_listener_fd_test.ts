/**
 * The descriptor the Deno adapter names for a listener it opens (server/adapters/
 * _deno_listener_fd.ts) is that listener's, never another thread's, while the threads of a
 * process open listeners on one port at once: naming another's would quiet a listener that stays
 * open (every handshake's last ACK dropped). Races many times: two workers open and close
 * listeners on the same port (on one address, then on two) and each checks the descriptor it was
 * given (its address, and whether another thread holds it named); a third opens and closes files, taking
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

/** Runs the two listening workers (on `hosts`, sharing `locks` as given) beside a churn. */
async function race(
  hosts: [string, string],
  locks: [SharedArrayBuffer, SharedArrayBuffer],
  millis: number,
) {
  const probe = Deno.listen({ hostname: "127.0.0.1", port: 0, reusePort: true });
  const port = (probe.addr as Deno.NetAddr).port;
  probe.close();
  const owners = new SharedArrayBuffer(4 * 65536);
  const url = new URL("./_listen_fd_worker.ts", import.meta.url).href;
  const workers = [new Worker(url, { type: "module" }), new Worker(url, { type: "module" })];
  const results = workers.map((worker) =>
    new Promise<Counts>((resolve, reject) => {
      worker.onmessage = (event: MessageEvent<Counts>) => resolve(event.data);
      worker.onerror = (event) => reject(new Error(event.message));
    })
  );
  workers.forEach((worker, i) =>
    worker.postMessage({ host: hosts[i], port, lock: locks[i], holder: i + 1, owners, millis })
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

const ONE: [string, string] = ["127.0.0.1", "127.0.0.1"];
const TWO: [string, string] = ["127.0.0.1", "127.0.0.2"];
const own = () => new SharedArrayBuffer(4);

test(
  "[deno] listener descriptor: two threads opening listeners on one port at once are each named their own, never the other's",
  { skip: deno ? false : "Bun's listeners say their descriptor" },
  async () => {
    const shared = own();
    // The threads of one pool: one address, turns taken.
    const counts = await race(ONE, [shared, shared], 1500);
    // Two servers of one process on two addresses: the address tells them apart even without
    // the turns (a pool's own lock, as it was).
    const apart = await race(TWO, [own(), own()], 750);
    // The turns' work, shown: one address, each thread with a lock of its own.
    const unshared = await race(ONE, [own(), own()], 750);
    console.log(
      `[deno] two threads on one address, turns taken: ${JSON.stringify(counts)}; two ` +
        `addresses, no turns: ${JSON.stringify(apart)}; one address, no turns: ` +
        JSON.stringify(unshared),
    );
    for (const count of [...counts, ...apart]) {
      assert.equal(count.wrong, 0, "never another thread's listener");
      assert.ok(count.own > count.none, `named its own in most listens: ${JSON.stringify(count)}`);
    }
  },
);
