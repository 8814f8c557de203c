/**
 * End to end, with a client that shares no code with tallyho (Python's standard library): many
 * connections pipelining thousands of lines while half of them read a few bytes at a time through
 * a bounded receive buffer, so the server's writes stop part way on some connections while it keeps
 * encoding replies for the others in its one reused output buffer. Every reply must be whole and
 * well-formed, every number unique (by message) or one per connection (by connection).
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { python } from "./_python.ts";
import { startTallyho, UNDER_TEST } from "./_server.ts";

const CONNECTIONS = 24;
const LINES_EACH = 12_000;

/** argv: port, numbering, connections, lines each, greeting, seconds. Prints JSON last. */
const CLIENT = String.raw`
import json, re, selectors, socket, sys, time
port, mode, conns, lines = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
greeting, limit = sys.argv[5].encode(), float(sys.argv[6])
pattern = re.compile(b"^" + re.escape(greeting) + b"([1-9][0-9]{0,15})$")
sel = selectors.DefaultSelector()
state = []
for i in range(conns):
    s = socket.socket()
    slow = i % 2 == 1
    if slow:
        # Not smaller: below loopback's 64 KiB MSS the kernel's silly-window avoidance can leave a
        # sender waiting on its persist timer (seconds, backing off), a stall that is not ours.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    s.connect(("127.0.0.1", port))
    s.setblocking(False)
    out = b"".join(b"l%d\n" % k if k % 7 else b"\n" for k in range(lines))
    st = {"sock": s, "out": out, "rest": b"", "numbers": [], "bad": [], "slow": slow, "i": i}
    state.append(st)
    sel.register(s, selectors.EVENT_READ | selectors.EVENT_WRITE, st)
deadline = time.monotonic() + limit
done = tick = 0
while done < conns and time.monotonic() < deadline:
    tick += 1
    for key, ev in sel.select(0.05):
        st = key.data
        s = st["sock"]
        if ev & selectors.EVENT_WRITE and st["out"]:
            try:
                # Uneven sends, so reads end mid-line and mid-burst.
                st["out"] = st["out"][s.send(st["out"][:1 + (tick * 131 + st["i"] * 17) % 9000]):]
            except BlockingIOError:
                pass
            if not st["out"]:
                sel.modify(s, selectors.EVENT_READ, st)
        if ev & selectors.EVENT_READ:
            if st["slow"] and tick % 3:
                continue
            try:
                data = s.recv(997 if st["slow"] else 65536)
            except BlockingIOError:
                continue
            if not data:
                st["bad"].append("closed after %d replies" % len(st["numbers"]))
                sel.unregister(s)
                done += 1
                continue
            parts = (st["rest"] + data).split(b"\n")
            st["rest"] = parts.pop()
            for p in parts:
                m = pattern.match(p)
                if m is None and len(st["bad"]) < 3:
                    st["bad"].append(p[:80].decode("latin1"))
                st["numbers"].append(-1 if m is None else int(m.group(1)))
            if len(st["numbers"]) >= lines:
                sel.unregister(s)
                done += 1
problems, numbers = [], []
for st in state:
    got = st["numbers"]
    if st["bad"] or len(got) != lines:
        problems.append({"conn": st["i"], "bad": st["bad"], "replies": len(got), "unsent": len(st["out"])})
    if mode == "message":
        if any(b <= a for a, b in zip(got, got[1:])):
            problems.append({"conn": st["i"], "not increasing": True})
        numbers.extend(got)
    else:
        if len(set(got)) > 1:
            problems.append({"conn": st["i"], "numbers": sorted(set(got))[:5]})
        numbers.extend(got[:1])
    st["sock"].close()
print(json.dumps({"replies": sum(len(st["numbers"]) for st in state), "numbers": len(numbers),
                  "distinct": len(set(numbers)), "problems": problems[:5]}))
`;

interface Outcome {
  replies: number;
  numbers: number;
  distinct: number;
  problems: unknown[];
}

for (const numberBy of ["message", "connection"]) {
  for (const greeting of ["Hello World", "G".repeat(1000)]) {
    // With the long greeting a connection is owed 6 MB, more than the kernel's largest send
    // buffer (tcp_wmem, 4 MiB by default) and the client's: the server's writes must stop part way.
    const lines = greeting.length > 100 ? LINES_EACH / 2 : LINES_EACH;
    test(`[${UNDER_TEST}] slow readers: ${CONNECTIONS} connections x ${lines} pipelined lines by ${numberBy}, ${greeting.length}-byte greeting, half reading 997 bytes at a time: every reply whole, no number repeated`, async () => {
      // One thread: every connection's replies go through the same reused output buffer.
      const server = await startTallyho([
        "--threads",
        "1",
        "--framing",
        "line",
        "--number-by",
        numberBy,
        "--greeting",
        greeting,
        "--max-connections-per-address",
        "0",
      ]);
      try {
        const outcome = await python(
          CLIENT,
          [String(server.port), numberBy, String(CONNECTIONS), String(lines), greeting, "60"],
          90_000,
        ) as Outcome;
        assert.deepEqual(outcome.problems, [], JSON.stringify(outcome));
        assert.equal(outcome.replies, CONNECTIONS * lines);
        assert.equal(outcome.numbers, numberBy === "message" ? CONNECTIONS * lines : CONNECTIONS);
        assert.equal(outcome.distinct, outcome.numbers, "a number was repeated");
      } finally {
        assert.equal(await server.stop(), 0);
      }
    });
  }
}
