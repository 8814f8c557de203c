/**
 * systemd's notification protocol (issue 22): what tallyho tells a `Type=notify` unit, checked
 * against a stand-in for systemd's socket written in Python (tests/fixtures/notify_listener.py),
 * which reads each sender's pid from the kernel (SO_PASSCRED) as systemd does: READY=1 only once
 * the server answers, STATUS= lines, RELOADING=1 then READY=1 around SIGHUP, STOPPING=1 on SIGTERM,
 * and in an upgrade MAINPID= from the new supervisor and nothing more from the old one.
 *
 * @module
 */

import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { runtime } from "../server/adapters/mod.ts";
import type { UnixDatagramSender } from "../server/adapters/unix_datagram.ts";
import { notifySocketAddress, NotifySocketError, SystemdNotifier } from "../server/systemd/mod.ts";
import { startTallyho, type TestServer, UNDER_TEST } from "./_server.ts";
import { skipOffCi, toolMissing } from "./_tools.ts";

const LISTENER = fileURLToPath(new URL("fixtures/notify_listener.py", import.meta.url));
const skip = skipOffCi(toolMissing("python3", "python3"));

/** One datagram as the stand-in received it. */
interface Notification {
  pid: number;
  fields: Record<string, string>;
}

/** The stand-in for systemd's notification socket. */
interface Listener {
  /** `$NOTIFY_SOCKET`'s value. */
  address: string;
  received: Notification[];
  /** Resolves with the first datagram, from index `from` on, that `match` accepts. */
  waitFor(
    match: (n: Notification) => boolean,
    what: string,
    from?: number,
  ): Promise<Notification>;
  stop(): void;
}

async function listen(abstract = false): Promise<Listener> {
  const dir = mkdtempSync(join(tmpdir(), "tallyho-notify-"));
  const address = abstract ? `@tallyho-notify-test-${process.pid}-${Date.now()}` : join(dir, "n");
  const child: ChildProcess = spawn("python3", [LISTENER, address], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  const received: Notification[] = [];
  let pending = "";
  let ready: () => void = () => {};
  const bound = new Promise<void>((resolve) => (ready = resolve));
  child.stdout!.on("data", (chunk: Buffer) => {
    pending += chunk.toString();
    const lines = pending.split("\n");
    pending = lines.pop()!;
    for (const line of lines) {
      const parsed = JSON.parse(line) as Notification & { listening?: boolean };
      if (parsed.listening) ready();
      else received.push({ pid: parsed.pid, fields: parsed.fields });
    }
  });
  await bound;
  return {
    address,
    received,
    waitFor: async (match, what, from = 0) => {
      const deadline = Date.now() + 20_000;
      for (;;) {
        const found = received.slice(from).find(match);
        if (found) return found;
        if (Date.now() > deadline) {
          throw new Error(`no ${what} within 20 s; received: ${JSON.stringify(received)}`);
        }
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    },
    stop: () => {
      child.kill("SIGKILL");
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Sends `hi` and reads the reply, on a fresh connection. */
function ask(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: "127.0.0.1", port }, () => socket.write("hi\n"));
    let reply = "";
    socket.on("data", (chunk) => {
      reply += chunk.toString();
      if (reply.includes("\n")) {
        socket.destroy();
        resolve(reply.trim());
      }
    });
    socket.on("error", reject);
  });
}

// --- the address and the notifier, without a socket ---

test("systemd notify: $NOTIFY_SOCKET becomes sockaddr_un bytes as sd_notify builds them", () => {
  const path = notifySocketAddress("/run/systemd/notify");
  assert.equal(path.length, 2 + "/run/systemd/notify".length + 1, "the family, the path, its NUL");
  assert.deepEqual([...path.subarray(0, 2)], [1, 0], "AF_UNIX, little-endian");
  assert.equal(new TextDecoder().decode(path.subarray(2, -1)), "/run/systemd/notify");
  assert.equal(path.at(-1), 0);
  const abstract = notifySocketAddress("@/org/freedesktop/systemd1/notify/42");
  assert.equal(
    abstract.length,
    2 + 1 + "/org/freedesktop/systemd1/notify/42".length,
    "no NUL after",
  );
  assert.equal(abstract[2], 0, "a leading NUL for the @");
  assert.throws(() => notifySocketAddress("run/notify"), NotifySocketError);
  assert.throws(() => notifySocketAddress(`/${"x".repeat(107)}`), /longer than/);
  assert.equal(notifySocketAddress(`/${"x".repeat(106)}`).length, 110, "107 bytes fit");
});

test("systemd notify: the notifier's messages, its quiet spell during an upgrade, one log line per failure", () => {
  const sent: string[] = [];
  let fail: string | null = null;
  const sender: UnixDatagramSender = {
    send: (bytes) => {
      if (fail !== null) throw new Error(fail);
      sent.push(new TextDecoder().decode(bytes));
    },
    close: () => {},
  };
  const logged: string[] = [];
  const notifier = SystemdNotifier.fromEnv({ NOTIFY_SOCKET: "/x" }, () => sender, {
    log: (line) => logged.push(line),
    pid: 4242,
  });
  notifier.ready("serving\n2 lines");
  notifier.status("same");
  notifier.status("same");
  notifier.reloading("reloading f");
  notifier.ready("done", { mainPid: true });
  notifier.quiet("upgrading");
  notifier.status("unheard");
  notifier.stopping("unheard");
  notifier.reclaim("back");
  notifier.stopping("bye");
  assert.deepEqual(sent, [
    "READY=1\nSTATUS=serving 2 lines",
    "STATUS=same",
    "RELOADING=1\nSTATUS=reloading f",
    "MAINPID=4242\nREADY=1\nSTATUS=done",
    "STATUS=upgrading",
    "MAINPID=4242\nREADY=1\nSTATUS=back",
    "STOPPING=1\nSTATUS=bye",
  ]);
  fail = "sendto failed with errno 11";
  notifier.status("a");
  notifier.status("b");
  assert.deepEqual(logged, ["systemd: cannot notify (STATUS=a): sendto failed with errno 11"]);
  const off = SystemdNotifier.fromEnv({}, () => {
    throw new Error("never opened without NOTIFY_SOCKET");
  }, { log: (line) => logged.push(line) });
  assert.equal(off.active, false);
  off.ready("nothing");
  const bad = SystemdNotifier.fromEnv({ NOTIFY_SOCKET: "relative" }, () => sender, {
    log: (line) => logged.push(line),
  });
  assert.equal(bad.active, false);
  assert.match(logged.at(-1)!, /cannot notify NOTIFY_SOCKET=relative: .*absolute path/);
});

// --- the runtime's adapter, against a real socket ---

for (const abstract of [false, true]) {
  test(
    `systemd notify: this runtime's FFI sender reaches ${
      abstract ? "an abstract" : "a path"
    } socket, credited to this pid`,
    {
      skip,
    },
    async () => {
      const listener = await listen(abstract);
      try {
        const sender = runtime.openUnixDatagram(notifySocketAddress(listener.address));
        sender.send(new TextEncoder().encode("READY=1\nSTATUS=é ok"));
        sender.close();
        sender.close();
        assert.throws(() => sender.send(new Uint8Array(1)), /closed/);
        const got = await listener.waitFor((n) => n.fields.READY === "1", "READY=1");
        assert.equal(got.pid, process.pid);
        assert.equal(got.fields.STATUS, "é ok");
      } finally {
        listener.stop();
      }
    },
  );
}

test(
  "systemd notify: a socket nobody listens on is an error with errno, not a crash",
  { skip },
  () => {
    const sender = runtime.openUnixDatagram(
      notifySocketAddress(`/tmp/tallyho-nobody-${process.pid}`),
    );
    try {
      assert.throws(() => sender.send(new Uint8Array([65])), /sendto failed with errno 2\b/);
    } finally {
      sender.close();
    }
  },
);

// --- the server under a stand-in systemd ---

async function withServer(
  args: string[],
  body: (server: TestServer, listener: Listener) => Promise<void>,
): Promise<void> {
  const listener = await listen();
  // The upgrade's handover socket goes here, removed with it.
  const dir = mkdtempSync(join(tmpdir(), "tallyho-notify-server-"));
  let server: TestServer | null = null;
  try {
    server = await startTallyho(args, { env: { NOTIFY_SOCKET: listener.address, TMPDIR: dir } });
    await body(server, listener);
  } finally {
    await server?.stop("SIGKILL");
    listener.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

test(
  `[${UNDER_TEST}] systemd notify: READY=1 once every process answers, RELOADING=1 then READY=1 around SIGHUP, STOPPING=1 on SIGTERM`,
  {
    skip,
  },
  async () => {
    const listener = await listen();
    const dir = mkdtempSync(join(tmpdir(), "tallyho-notify-server-"));
    const config = join(dir, "tallyho.json");
    writeFileSync(config, JSON.stringify({ greeting: "Hi" }));
    let server: TestServer | null = null;
    try {
      server = await startTallyho(
        ["--config", config, "--processes", "2", "--threads", "1", "--framing", "line"],
        { env: { NOTIFY_SOCKET: listener.address } },
      );
      const ready = await listener.waitFor((n) => n.fields.READY === "1", "READY=1");
      assert.equal(ready.pid, server.pid, "from the supervisor");
      assert.match(ready.fields.STATUS!, /^serving 0 connections on 127\.0\.0\.1:\d+ \(2 x 1, /);
      const port = Number(/:(\d+) /.exec(ready.fields.STATUS!)![1]);
      assert.equal(port, server.port);
      assert.match(await ask(port), /^Hi\d+$/, "served as soon as systemd hears READY=1");
      assert.equal(listener.received.filter((n) => n.fields.READY).length, 1, "READY=1 once");

      writeFileSync(config, JSON.stringify({ greeting: "Ho" }));
      const before = listener.received.length;
      process.kill(server.pid, "SIGHUP");
      const reloading = await listener.waitFor(
        (n) => n.fields.RELOADING === "1",
        "RELOADING",
        before,
      );
      const reloaded = await listener.waitFor((n) => n.fields.READY === "1", "READY after", before);
      assert.ok(listener.received.indexOf(reloading) < listener.received.indexOf(reloaded));
      assert.match(reloaded.fields.STATUS!, /configuration generation 2\)/);
      assert.match(await ask(port), /^Ho\d+$/, "READY=1 once the change is in force");

      writeFileSync(config, "{ not json");
      const failedAt = listener.received.length;
      process.kill(server.pid, "SIGHUP");
      const refused = await listener.waitFor((n) => n.fields.READY === "1", "READY", failedAt);
      assert.match(
        refused.fields.STATUS!,
        /generation 2\); last number \d+; last reload refused: /,
      );

      const stoppingAt = listener.received.length;
      assert.equal(await server.stop("SIGTERM"), 0);
      const stopping = await listener.waitFor((n) => n.fields.STOPPING === "1", "STOP", stoppingAt);
      assert.match(stopping.fields.STATUS!, /^stopping \(SIGTERM\); last number \d+/);
      assert.ok(
        listener.received.every((n) => n.pid === server!.pid),
        "only the supervisor speaks (never a serving process)",
      );
    } finally {
      await server?.stop("SIGKILL");
      listener.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  },
);

test(
  `[${UNDER_TEST}] systemd notify: an upgrade's new supervisor sends MAINPID= itself once it serves alone, and the old one says nothing after it began`,
  {
    skip,
  },
  async () => {
    await withServer(["--admin", "127.0.0.1:0"], async (server, listener) => {
      await listener.waitFor((n) => n.fields.READY === "1", "READY=1");
      const started = listener.received.length;
      process.kill(server.pid, "SIGUSR2");
      const [, newPid] = await server.waitFor(/started a new supervisor \(pid (\d+)\)/);
      const takeover = await listener.waitFor((n) => n.fields.MAINPID !== undefined, "MAINPID");
      assert.equal(takeover.pid, Number(newPid), "sent by the new supervisor");
      assert.equal(takeover.fields.MAINPID, newPid, "naming itself");
      assert.equal(takeover.fields.READY, "1");
      assert.equal(await server.exited, 0, "the old supervisor drained and exited");
      const fromOld = listener.received.slice(started).filter((n) => n.pid === server.pid);
      assert.deepEqual(
        fromOld.map((n) => n.fields),
        [{ STATUS: `upgrading: new supervisor pid ${newPid} is starting` }],
        "after the upgrade began the old supervisor sent one status, then nothing (no STOPPING=1)",
      );
      assert.match(await ask(server.port), /^Hello World\d+$/, "the new tree serves");
      const stopAt = listener.received.length;
      process.kill(Number(newPid), "SIGTERM");
      const stopping = await listener.waitFor((n) => n.fields.STOPPING === "1", "STOP", stopAt);
      assert.equal(stopping.pid, Number(newPid));
    });
  },
);

test(
  `[${UNDER_TEST}] systemd notify: an upgrade that fails leaves the old supervisor the main PID again (MAINPID=, READY=1)`,
  {
    skip,
  },
  async () => {
    const dir = mkdtempSync(join(tmpdir(), "tallyho-notify-config-"));
    const config = join(dir, "tallyho.json");
    writeFileSync(config, JSON.stringify({ greeting: "Hello World" }));
    try {
      await withServer(["--config", config], async (server, listener) => {
        await listener.waitFor((n) => n.fields.READY === "1", "READY=1");
        // The new supervisor reads the configuration again: a bad one fails the upgrade.
        writeFileSync(config, JSON.stringify({ greeting: 42 }));
        const started = listener.received.length;
        process.kill(server.pid, "SIGUSR2");
        await server.waitFor(/upgrade failed/);
        const back = await listener.waitFor(
          (n) => n.fields.MAINPID !== undefined,
          "MAINPID",
          started,
        );
        assert.equal(back.pid, server.pid);
        assert.equal(back.fields.MAINPID, String(server.pid));
        assert.equal(back.fields.READY, "1");
        assert.match(back.fields.STATUS!, /upgrade failed: /);
        assert.match(await ask(server.port), /^Hello World\d+$/);
      });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  },
);
