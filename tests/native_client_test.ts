/**
 * The comparison's native client (bench/native_client) checks what it is sent: it counts every
 * reply, accepts numbering by message and by connection, leaves lines that are not the greeting
 * unchecked, and fails (exit 3) on a number that two connections received. Servers here are
 * small `node:net` ones in the test, so what the client is judged against is known exactly.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { createServer, type Server, type Socket } from "node:net";
import { nativeClientPath } from "../bench/native_client/native_client.ts";
import { skipOffCi, testNeeding, toolMissing } from "./_tools.ts";
import { UNDER_TEST } from "./_server.ts";

const test = testNeeding(skipOffCi(toolMissing("cc", "gcc")));

interface Report {
  replies: number;
  requests: number;
  completed: number;
  connectionsPerSecond: number;
  errorsTotal: number;
  check: {
    numbered: number;
    other: number;
    repeats: number;
    repeatExamples: number[];
    ok: boolean;
  };
  ok: boolean;
}

/** A server that answers each line with `reply(connectionIndex)`. */
async function lineServer(reply: (connection: number) => string): Promise<Server> {
  let connections = 0;
  const server = createServer((socket: Socket) => {
    const index = connections++;
    socket.on("data", (chunk: Uint8Array) => {
      let lines = 0;
      for (const byte of chunk) if (byte === 10) lines++;
      let out = "";
      for (let i = 0; i < lines; i++) out += reply(index);
      if (out !== "") socket.write(out);
    });
    socket.on("error", () => {});
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return server;
}

function portOf(server: Server): number {
  return (server.address() as { port: number }).port;
}

function runClient(args: string[]): Promise<{ code: number; report: Report }> {
  return new Promise((resolve, reject) => {
    execFile(nativeClientPath(), args, { timeout: 30_000 }, (error, stdout, stderr) => {
      const code = error === null ? 0 : (error as { code?: number }).code ?? -1;
      try {
        resolve({ code, report: JSON.parse(stdout) as Report });
      } catch {
        reject(new Error(`no report (exit ${code}): ${stderr}`));
      }
    });
  });
}

async function closeServer(server: Server): Promise<void> {
  // Connections the client left are closed by it; wait for the server to let go.
  await new Promise<void>((resolve) => server.close(() => resolve()));
}

test(`[${UNDER_TEST}] native client checks every reply of a server that numbers each one`, async () => {
  let n = 0;
  const server = await lineServer(() => `Hello World${++n}\n`);
  try {
    for (const workload of ["closed", "pipelined", "connect"]) {
      const { code, report } = await runClient([
        "--port",
        String(portOf(server)),
        "--workload",
        workload,
        "--connections",
        "4",
        "--depth",
        "10",
        "--duration-ms",
        "300",
      ]);
      assert.equal(code, 0, `${workload}: ${JSON.stringify(report)}`);
      assert.ok(report.replies > 0, `${workload}: replies came`);
      assert.equal(report.check.numbered, report.replies, `${workload}: every reply checked`);
      assert.equal(report.check.repeats, 0);
      assert.ok(report.check.ok && report.ok);
      if (workload === "connect") {
        assert.ok(report.completed > 0 && report.connectionsPerSecond > 0, "connect cycles");
      }
    }
  } finally {
    await closeServer(server);
  }
});

test(`[${UNDER_TEST}] native client accepts numbering by connection and leaves other lines unchecked`, async () => {
  const byConnection = await lineServer((index) => `Hello World${index + 1}\n`);
  const pong = await lineServer(() => "+PONG\r\n");
  try {
    const args = ["--workload", "closed", "--connections", "1", "--duration-ms", "200"];
    const kept = await runClient(["--port", String(portOf(byConnection)), ...args]);
    assert.equal(kept.code, 0, JSON.stringify(kept.report));
    assert.ok(kept.report.check.numbered > 1 && kept.report.check.repeats === 0);
    const other = await runClient(["--port", String(portOf(pong)), ...args]);
    assert.equal(other.code, 0, JSON.stringify(other.report));
    assert.equal(other.report.check.other, other.report.replies);
    assert.equal(other.report.check.numbered, 0);
  } finally {
    await closeServer(byConnection);
    await closeServer(pong);
  }
});

test(`[${UNDER_TEST}] native client fails with exit 3 when two connections get the same number`, async () => {
  // Every connection is numbered 7: the second connection's first reply is a repeat.
  const server = await lineServer(() => "Hello World7\n");
  try {
    const { code, report } = await runClient([
      "--port",
      String(portOf(server)),
      "--workload",
      "closed",
      "--connections",
      "2",
      "--duration-ms",
      "200",
    ]);
    assert.equal(code, 3, JSON.stringify(report));
    assert.equal(report.check.ok, false);
    assert.ok(report.check.repeats >= 1);
    assert.deepEqual(report.check.repeatExamples.slice(0, 1), [7]);
  } finally {
    await closeServer(server);
  }
});
