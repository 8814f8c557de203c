/**
 * How the capped admin relay shares its places (server/adapters/_relay_book.ts), without sockets:
 * nothing is decided about a connection before its first bytes are read, one that sends its whole
 * head at once is placed at once whatever a flood does, the relayed slots keep a reserve for the
 * token's holders and a share per address, and a probe or an operator is known by its first
 * request head.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import {
  BUSY_RESPONSE,
  type Relay,
  RelayBook,
  type RelayBookOptions,
} from "../server/adapters/_relay_book.ts";

const TOKEN = "Bearer right-token";
const encode = (text: string) => new TextEncoder().encode(text);
const OPERATOR_HEAD = `GET /v1/info HTTP/1.1\r\nHost: x\r\nAuthorization: ${TOKEN}\r\n\r\n`;
const OTHER_HEAD = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";

function book(options: Partial<RelayBookOptions> = {}): { book: RelayBook; closed: string[] } {
  const closed: string[] = [];
  const relays = new RelayBook({
    maxConnections: 8,
    maxReading: 8,
    reserve: 2,
    perSource: 3,
    probePaths: new Set(["/livez", "/readyz"]),
    isOperator: (authorization) => authorization === TOKEN,
    maxHeadBytes: 1024,
    headTimeoutMs: 60_000,
    idleTimeoutMs: 60_000,
    log: () => {},
    ...options,
  });
  return { book: relays, closed };
}

/** Admits a connection named `name` from `source`; its close is recorded in `closed`. */
function open(
  relays: { book: RelayBook; closed: string[] },
  source: string,
  name: string,
): Relay | null {
  return relays.book.admit(source, () => relays.closed.push(name));
}

test("relay book: a new connection takes the place of the oldest one not read yet, from the address holding the most", () => {
  const relays = book({ maxReading: 4 });
  try {
    open(relays, "10.0.0.1", "a");
    open(relays, "10.0.0.2", "b");
    open(relays, "10.0.0.2", "c");
    open(relays, "10.0.0.3", "d");
    // Full: 10.0.0.2 holds the most, and b is its oldest.
    assert.ok(open(relays, "10.0.0.9", "e") !== null);
    assert.deepEqual(relays.closed, ["b"]);
    assert.equal(relays.book.counts().evicted, 1);
    assert.equal(relays.book.counts().open, 4);
  } finally {
    relays.book.stop();
  }
});

test("relay book: a connection that sends its whole head at once is placed at once, whatever a flood that sends a byte does", () => {
  const relays = book({ maxReading: 4 });
  try {
    // A flood from the operator's own address fills both pools: four have sent a byte, four not.
    const spoke = ["s1", "s2", "s3", "s4"].map((name) => open(relays, "127.0.0.1", name)!);
    for (const relay of spoke) {
      assert.equal(relays.book.fromClient(relay, encode("G"))?.kind, "wait");
    }
    for (const name of ["n1", "n2", "n3", "n4"]) open(relays, "127.0.0.1", name);
    // The operator's connection takes the place of the oldest not read yet...
    const operator = open(relays, "127.0.0.1", "operator")!;
    assert.deepEqual(relays.closed, ["n1"]);
    // ...and more of the flood before its request is read push out only the flood's own.
    for (const name of ["n5", "n6", "n7"]) open(relays, "127.0.0.1", name);
    assert.deepEqual(relays.closed, ["n1", "n2", "n3", "n4"]);
    assert.equal(operator.closed, false);
    assert.equal(relays.book.fromClient(operator, encode(OPERATOR_HEAD))?.kind, "relay");
    assert.equal(operator.operator, true);
    // One more that sends a byte takes the place of the oldest that did.
    const late = relays.book.fromClient(relays.book.admit("127.0.0.1", () => {})!, encode("G"));
    assert.equal(late?.kind, "wait");
    assert.deepEqual(relays.closed, ["n1", "n2", "n3", "n4", "s1"]);
  } finally {
    relays.book.stop();
  }
});

test("relay book: a probe answered by the relay gives its place up first", () => {
  const relays = book({ maxReading: 2 });
  try {
    const probe = open(relays, "10.0.0.1", "probe")!;
    assert.equal(
      relays.book.fromClient(probe, encode("GET /livez HTTP/1.1\r\n\r\n"))?.kind,
      "probe",
    );
    relays.book.fromServer(probe, encode("HTTP/1.1 200 OK\r\n"));
    const slow = open(relays, "10.0.0.2", "slow")!;
    relays.book.fromClient(slow, encode("GET / HT"));
    const third = open(relays, "10.0.0.3", "third")!;
    relays.book.fromClient(third, encode("GET / HT"));
    assert.deepEqual(relays.closed, ["probe"]);
  } finally {
    relays.book.stop();
  }
});

test("relay book: the relayed slots keep a reserve for the token's holders, and never close theirs", () => {
  const relays = book({ maxConnections: 4, maxReading: 16, reserve: 2, perSource: 4 });
  try {
    // Two without the token fill what the reserve leaves; they are answered and idle.
    const others = ["o1", "o2"].map((name, i) => open(relays, `10.0.1.${i}`, name)!);
    for (const relay of others) {
      assert.equal(relays.book.fromClient(relay, encode(OTHER_HEAD))?.kind, "relay");
    }
    // A third one finds no slot while the others are still being answered: 503 and closed.
    const third = open(relays, "10.0.1.9", "third")!;
    const busy = relays.book.fromClient(third, encode(OTHER_HEAD));
    assert.deepEqual(busy, { kind: "busy", bytes: BUSY_RESPONSE });
    assert.equal(relays.book.counts().refusedOverCap, 1);
    // Operators take the reserve.
    const operators = ["p1", "p2"].map((name) => open(relays, "10.0.0.1", name)!);
    for (const relay of operators) {
      assert.equal(relays.book.fromClient(relay, encode(OPERATOR_HEAD))?.kind, "relay");
      assert.equal(relay.operator, true);
    }
    // All four slots taken; once the others are answered and idle, one gives its slot up to a
    // third operator, never an operator's to anyone.
    for (const relay of others) relays.book.fromServer(relay, encode("HTTP/1.1 200 OK\r\n"));
    const late = open(relays, "10.0.0.1", "p3")!;
    assert.equal(relays.book.fromClient(late, encode(OPERATOR_HEAD))?.kind, "relay");
    assert.deepEqual(relays.closed, ["o1"]);
    const lateOther = open(relays, "10.0.1.8", "late-other")!;
    assert.equal(relays.book.fromClient(lateOther, encode(OTHER_HEAD))?.kind, "relay");
    assert.deepEqual(relays.closed, ["o1", "o2"]);
    const last = open(relays, "10.0.1.7", "last")!;
    assert.equal(relays.book.fromClient(last, encode(OTHER_HEAD))?.kind, "busy");
    assert.deepEqual(relays.closed, ["o1", "o2"], "no operator's slot was taken");
  } finally {
    relays.book.stop();
  }
});

test("relay book: a probe is answered by the relay, a wrong token or a POST is relayed as anyone's, a head too long is relayed unread", () => {
  const relays = book();
  try {
    const probe = open(relays, "10.0.0.4", "probe")!;
    relays.book.fromClient(probe, encode("GET /readyz?verbose=1 HTTP/1.1\r"));
    const outcome = relays.book.fromClient(probe, encode("\nHost: x\r\n\r\n"));
    assert.equal(outcome?.kind, "probe");
    assert.equal(outcome?.kind === "probe" && outcome.head.target, "/readyz?verbose=1");
    relays.book.fromServer(probe, encode("HTTP/1.1 200 OK\r\n\r\n"));
    assert.equal(relays.book.counts().probesAnswered, 1);
    const wrong = open(relays, "10.0.0.5", "wrong")!;
    const relayed = relays.book.fromClient(
      wrong,
      encode("POST /livez HTTP/1.1\r\nAuthorization: Bearer wrong\r\n\r\nbody"),
    );
    assert.equal(relayed?.kind, "relay");
    assert.equal(
      new TextDecoder().decode(relayed?.kind === "relay" ? relayed.bytes : new Uint8Array()),
      "POST /livez HTTP/1.1\r\nAuthorization: Bearer wrong\r\n\r\nbody",
      "every byte read so far goes to the inner server",
    );
    assert.equal(wrong.operator, false);
    const long = open(relays, "10.0.0.6", "long")!;
    assert.equal(relays.book.fromClient(long, encode("GET /"))?.kind, "wait");
    assert.equal(relays.book.fromClient(long, new Uint8Array(2000).fill(97))?.kind, "relay");
    assert.equal(relays.book.fromClient(long, encode("more")), null, "then bytes just pass");
  } finally {
    relays.book.stop();
  }
});
