/**
 * Clients for the PROXY protocol tests, in Python's standard library (no code shared with the
 * server): each step connects from a chosen 127.0.0.x address, optionally sends header bytes
 * (whole or a few bytes at a time), then a line, and reports the reply or that the connection was
 * closed. Held connections ask again at the end, to show that others' failures did not touch them.
 *
 * @module
 */

import { Buffer } from "node:buffer";
import { spawn } from "node:child_process";

/** One connection to make. */
export interface ProxyStep {
  /** The address to connect from (127.0.0.x). */
  source: string;
  /** The port to connect to. */
  port: number;
  /** Bytes sent first, as hex (a PROXY header, or anything). */
  header?: string;
  /** Send the header this many bytes at a time, 20 ms apart (0: at once). */
  split?: number;
  /** Send nothing more and wait this long for the server to close (ms). */
  silentMs?: number;
  /** Keep it open and ask again after every step. */
  hold?: boolean;
}

/** What happened to each step, and to the held connections at the end. */
export interface ProxyResults {
  /** The reply line, or "" when the connection closed without one. */
  replies: string[];
  /** The held connections' second replies, in order. */
  heldAgain: string[];
}

const CLIENTS = `
import json, socket, sys, time
steps = json.loads(sys.argv[1])
def reply(s):
    buf = b""
    try:
        while not buf.endswith(b"\\n"):
            d = s.recv(256)
            if not d:
                return ""
            buf += d
    except OSError:
        return ""
    return buf.decode().strip()
held, replies = [], []
for step in steps:
    s = socket.socket()
    s.settimeout(5)
    s.bind((step["source"], 0))
    s.connect(("127.0.0.1", step["port"]))
    header = bytes.fromhex(step.get("header", ""))
    split = step.get("split", 0)
    try:
        if split:
            for i in range(0, len(header), split):
                s.sendall(header[i:i + split])
                time.sleep(0.02)
        elif header:
            s.sendall(header)
        if "silentMs" in step:
            s.settimeout(step["silentMs"] / 1000)
            try:
                replies.append("closed" if s.recv(256) == b"" else "data")
            except socket.timeout:
                replies.append("open")
            except OSError:
                replies.append("closed")
            s.close()
            continue
        s.sendall(b"hi\\n")
    except OSError:
        replies.append("")
        s.close()
        continue
    replies.append(reply(s))
    if step.get("hold"):
        held.append(s)
    else:
        s.close()
again = []
for s in held:
    try:
        s.sendall(b"again\\n")
        again.append(reply(s))
    except OSError:
        again.append("")
    s.close()
print(json.dumps({"replies": replies, "heldAgain": again}))
`;

/**
 * Runs the steps in one Python process, in order.
 *
 * @param steps The connections to make.
 * @param timeoutMs The most the whole run may take.
 * @returns What each got.
 */
export function runProxyClients(steps: ProxyStep[], timeoutMs = 60_000): Promise<ProxyResults> {
  const child = spawn("python3", ["-c", CLIENTS, JSON.stringify(steps)], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (c: Buffer) => (stdout += c.toString()));
  child.stderr.on("data", (c: Buffer) => (stderr += c.toString()));
  const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
  return new Promise((resolve, reject) =>
    child.on("close", (code) => {
      clearTimeout(timer);
      if (code !== 0) reject(new Error(`python3 exited ${code}: ${stderr}${stdout}`));
      else resolve(JSON.parse(stdout.trim().split("\n").at(-1)!));
    })
  );
}

/** A v1 header for a TCP4 client, as hex. */
export function v1Header(client: string, clientPort = 40000): string {
  return Buffer.from(`PROXY TCP4 ${client} 127.0.0.1 ${clientPort} 9000\r\n`).toString("hex");
}

/** A v2 header (PROXY, TCP over IPv4, with one TLV to skip) or LOCAL, as hex. */
export function v2Header(client: string | "LOCAL"): string {
  const signature = "0d0a0d0a000d0a515549540a";
  if (client === "LOCAL") return signature + "20000000";
  const octets = client.split(".").map((o) => Number(o).toString(16).padStart(2, "0")).join("");
  // 12 address bytes + a 7-byte TLV (type 0x05 unique id, length 4).
  return signature + "2111" + "0013" + octets + "7f000001" + "9c40" + "2328" + "050004" +
    "deadbeef";
}

/**
 * A process's figures added up, from `/v1/stats`.
 *
 * @param admin The server's admin call.
 * @returns Each figure's total over every process.
 */
export async function totals(
  admin: (path: string) => Promise<Response>,
): Promise<Record<string, number>> {
  const body = await (await admin("/v1/stats")).json() as {
    processes: Array<{ totals: Record<string, number> }>;
  };
  const sum: Record<string, number> = {};
  for (const process of body.processes) {
    for (const [name, value] of Object.entries(process.totals)) {
      sum[name] = (sum[name] ?? 0) + value;
    }
  }
  return sum;
}
