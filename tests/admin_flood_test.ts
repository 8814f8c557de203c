/**
 * Nobody on the network can lock the operator or the probes out of the admin API: a flood of 1200
 * connections that each send one byte and are made again as soon as the server closes them (more
 * than the 1024 places for reading and the 64 slots), from one address and from 100, while an
 * operator with the token and a probe without one poll it. Both must be answered every time. The
 * flood and the polls are Python's standard library, which shares no code with the server.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { python } from "./_python.ts";
import { ADMIN_TOKEN, startTallyho, UNDER_TEST } from "./_server.ts";

// Holds FLOODERS connections (from ADDRESSES addresses 127.0.1.N, or all from 127.0.0.1 when
// ADDRESSES is 1): each connects, sends one byte and, as soon as the server closes it, is made
// again; for SECONDS. Beside them, every 0.2 s: GET /v1/info with the token, GET /livez and
// GET /readyz without one (each a new connection from 127.0.0.1, 3 s to answer). Prints what each
// got and how many connections the flood made.
const FLOOD = `
import http.client, json, selectors, socket, sys, threading, time
port, seconds, flooders, addresses, token = int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
stop = time.monotonic() + seconds
made = [0]
def flood():
    sel = selectors.DefaultSelector()
    def open_one(i):
        s = socket.socket()
        s.setblocking(False)
        try:
            if addresses > 1:
                s.bind(("127.0.1.%d" % (1 + i % addresses), 0))
            s.connect_ex(("127.0.0.1", port))
        except OSError:
            s.close()
            return
        sel.register(s, selectors.EVENT_WRITE, (i, "connecting"))
    def again(s, i):
        sel.unregister(s)
        s.close()
        open_one(i)
    for i in range(flooders):
        open_one(i)
    while time.monotonic() < stop:
        for key, _ in sel.select(0.05):
            s, (i, state) = key.fileobj, key.data
            if state == "connecting":
                if s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) != 0:
                    again(s, i)
                    continue
                try:
                    s.send(b"G")
                except OSError:
                    again(s, i)
                    continue
                made[0] += 1
                sel.modify(s, selectors.EVENT_READ, (i, "open"))
            else:
                try:
                    data = s.recv(4096)
                except BlockingIOError:
                    continue
                except OSError:
                    data = b""
                if data == b"":
                    again(s, i)
    for key in list(sel.get_map().values()):
        key.fileobj.close()
results = {"info": [], "livez": [], "readyz": []}
def ask(path, with_token):
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=3)
        headers = {"Authorization": "Bearer " + token} if with_token else {}
        c.request("GET", path, headers=headers)
        r = c.getresponse()
        r.read()
        c.close()
        return r.status
    except Exception as e:
        return repr(e)
flooding = threading.Thread(target=flood)
flooding.start()
time.sleep(1)
while time.monotonic() < stop - 0.5:
    results["info"].append(ask("/v1/info", True))
    results["livez"].append(ask("/livez", False))
    results["readyz"].append(ask("/readyz", False))
    time.sleep(0.2)
flooding.join()
results["flood_connections"] = made[0]
print(json.dumps(results))
`;

interface FloodResult {
  info: (number | string)[];
  livez: (number | string)[];
  readyz: (number | string)[];
  flood_connections: number;
}

for (const addresses of [1, 100]) {
  const from = addresses === 1 ? "one address" : `${addresses} addresses`;
  test(`[${UNDER_TEST}] admin flood from ${from}: 1200 connections that send a byte and reconnect leave the operator and the probes served every time`, async () => {
    const server = await startTallyho(["--threads", "1"]);
    try {
      const port = Number(new URL(server.adminUrl!).port);
      const result = await python(
        FLOOD,
        [String(port), "6", "1200", String(addresses), ADMIN_TOKEN],
        60_000,
      ) as FloodResult;
      const failures = [...result.info, ...result.livez, ...result.readyz].filter((s) => s !== 200);
      const summary = JSON.stringify({
        floodConnections: result.flood_connections,
        info: result.info.length,
        livez: result.livez.length,
        readyz: result.readyz.length,
        failures,
        log: server.output().split("\n").filter((line) => line.includes("admin API:")),
      });
      assert.ok(result.info.length >= 10, `the operator asked throughout: ${summary}`);
      assert.deepEqual(failures, [], `the operator and the probes got 200 every time: ${summary}`);
      // The flood took more places than there are: the server had to close some to make room.
      assert.ok(result.flood_connections > 1200, `the flood connected: ${summary}`);
      assert.match(server.output(), /admin API: closed \d+ connection\(s\) without a complete/);
      console.log(`admin flood from ${from}: ${summary}`);
    } finally {
      await server.stop();
    }
  });
}
