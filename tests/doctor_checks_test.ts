/**
 * tallyho doctor judged on fake hosts: every item's verdict and fix, read through the same
 * /proc paths as on a real host but from a fake /proc.
 */
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { test } from "node:test";
import {
  diagnose,
  type DoctorItem,
  type DoctorOptions,
  parseOpenFileLimit,
  parseSsBacklog,
  renderText,
} from "../server/doctor/mod.ts";
import { doctorMain } from "../cli/doctor.ts";
import { selfSignedCertificate, skipOpenssl } from "./_certificates.ts";

/** Values of a host set up as the README's "Running tallyho on the internet" recommends. */
const GOOD: Record<string, string> = {
  "sys/net/ipv4/tcp_syncookies": "1\n",
  "sys/net/ipv4/tcp_max_syn_backlog": "8192\n",
  "sys/net/ipv4/tcp_synack_retries": "2\n",
  "sys/net/core/somaxconn": "4096\n",
  "sys/net/ipv4/tcp_abort_on_overflow": "0\n",
  "sys/net/ipv4/tcp_migrate_req": "1\n",
  "sys/net/ipv4/ip_local_port_range": "1024\t65535\n",
  "self/limits": limits(1048576, 1048576),
};

function limits(soft: number | string, hard: number | string): string {
  return [
    "Limit                     Soft Limit           Hard Limit           Units     ",
    "Max processes             63429                63429                processes ",
    `Max open files            ${String(soft).padEnd(21)}${String(hard).padEnd(21)}files     `,
    "Max locked memory         8388608              8388608              bytes     ",
    "",
  ].join("\n");
}

/**
 * A fake host: files under a fake /proc (`null` removes a file) and a listen backlog.
 */
function fakeHost(
  changes: Record<string, string | null> = {},
  backlog: number | Error = 512,
): DoctorOptions {
  const files: Record<string, string | null> = { ...GOOD, ...changes };
  return {
    procRoot: "/fake/proc",
    readFile: (path) => {
      const content = files[path.slice("/fake/proc/".length)];
      if (content === undefined || content === null) {
        return Promise.reject(
          Object.assign(new Error(`ENOENT: no such file or directory, open '${path}'`), {
            code: "ENOENT",
          }),
        );
      }
      return Promise.resolve(content);
    },
    probeBacklog: () =>
      backlog instanceof Error
        ? Promise.reject(backlog)
        : Promise.resolve({ backlog, runtime: "bun" }),
    // A host where root may raise the hard limit (the default asks a real shell).
    canRaiseHardLimit: () => Promise.resolve(true),
  };
}

async function item(name: string, options: DoctorOptions): Promise<DoctorItem> {
  const report = await diagnose(options);
  const found = report.items.find((i) => i.name === name);
  assert.ok(found, `no item named ${name} in ${report.items.map((i) => i.name).join(", ")}`);
  return found;
}

function silentIo(): {
  out: string[];
  err: string[];
  io: { out(l: string): void; err(l: string): void };
} {
  const out: string[] = [];
  const err: string[] = [];
  return { out, err, io: { out: (l) => out.push(l), err: (l) => err.push(l) } };
}

test("doctor unit: a host set up as recommended is ok on every item, with no fix, exit 0", async () => {
  const report = await diagnose(fakeHost());
  assert.deepEqual(report.items.map((i) => i.name), [
    "net.ipv4.tcp_syncookies",
    "net.ipv4.tcp_max_syn_backlog",
    "net.ipv4.tcp_synack_retries",
    "net.core.somaxconn",
    "listen backlog",
    "net.ipv4.tcp_abort_on_overflow",
    "net.ipv4.tcp_migrate_req",
    "net.ipv4.ip_local_port_range",
    "open files",
  ]);
  for (const i of report.items) {
    assert.equal(i.verdict, "ok", `${i.name}: ${i.why}`);
    assert.equal(i.fix, null, i.name);
    assert.ok(i.why.length > 20, `${i.name} says why`);
  }
  assert.equal(report.syncookiesOff, false);
  const { io } = silentIo();
  assert.equal(await doctorMain([], io, fakeHost()), 0);
});

// [what it guarantees, item, changed files, backlog, value shown, verdict, fix (null: none)]
const cases: Array<
  [
    string,
    string,
    Record<string, string | null>,
    number | Error,
    string | null,
    string,
    string | null,
  ]
> = [
  [
    "SYN cookies off is bad",
    "net.ipv4.tcp_syncookies",
    { "sys/net/ipv4/tcp_syncookies": "0\n" },
    512,
    "0",
    "bad",
    "sysctl -w net.ipv4.tcp_syncookies=1",
  ],
  [
    "SYN cookies always on (2) is risky",
    "net.ipv4.tcp_syncookies",
    { "sys/net/ipv4/tcp_syncookies": "2\n" },
    512,
    "2",
    "risky",
    "sysctl -w net.ipv4.tcp_syncookies=1",
  ],
  [
    "a SYN backlog of 2048 is ok while cookies are on",
    "net.ipv4.tcp_max_syn_backlog",
    { "sys/net/ipv4/tcp_max_syn_backlog": "2048\n" },
    512,
    "2048",
    "ok",
    null,
  ],
  [
    "a SYN backlog of 2048 is risky with cookies off",
    "net.ipv4.tcp_max_syn_backlog",
    { "sys/net/ipv4/tcp_max_syn_backlog": "2048\n", "sys/net/ipv4/tcp_syncookies": "0\n" },
    512,
    "2048",
    "risky",
    "sysctl -w net.ipv4.tcp_max_syn_backlog=4096",
  ],
  [
    "a SYN backlog of 256 is risky even with cookies on",
    "net.ipv4.tcp_max_syn_backlog",
    { "sys/net/ipv4/tcp_max_syn_backlog": "256\n" },
    512,
    "256",
    "risky",
    "sysctl -w net.ipv4.tcp_max_syn_backlog=4096",
  ],
  [
    "5 SYN-ACK retries (the kernel default) are risky",
    "net.ipv4.tcp_synack_retries",
    { "sys/net/ipv4/tcp_synack_retries": "5\n" },
    512,
    "5",
    "risky",
    "sysctl -w net.ipv4.tcp_synack_retries=2",
  ],
  [
    "0 SYN-ACK retries are risky",
    "net.ipv4.tcp_synack_retries",
    { "sys/net/ipv4/tcp_synack_retries": "0\n" },
    512,
    "0",
    "risky",
    "sysctl -w net.ipv4.tcp_synack_retries=2",
  ],
  [
    "3 SYN-ACK retries are ok",
    "net.ipv4.tcp_synack_retries",
    { "sys/net/ipv4/tcp_synack_retries": "3\n" },
    512,
    "3",
    "ok",
    null,
  ],
  [
    "somaxconn 512 is ok (the runtimes ask for 511 and 512)",
    "net.core.somaxconn",
    { "sys/net/core/somaxconn": "512\n" },
    512,
    "512",
    "ok",
    null,
  ],
  [
    "somaxconn 256 is risky",
    "net.core.somaxconn",
    { "sys/net/core/somaxconn": "256\n" },
    256,
    "256",
    "risky",
    "sysctl -w net.core.somaxconn=4096",
  ],
  [
    "somaxconn 64 is bad",
    "net.core.somaxconn",
    { "sys/net/core/somaxconn": "64\n" },
    64,
    "64",
    "bad",
    "sysctl -w net.core.somaxconn=4096",
  ],
  [
    "a listen backlog cut to somaxconn 64 is bad and fixed with somaxconn",
    "listen backlog",
    { "sys/net/core/somaxconn": "64\n" },
    64,
    "64",
    "bad",
    "sysctl -w net.core.somaxconn=4096",
  ],
  [
    "a listen backlog of 200 under a large somaxconn is risky and fixed with threads",
    "listen backlog",
    {},
    200,
    "200",
    "risky",
    "tallyho serve --threads N with more threads (each thread's listener has its own queue)",
  ],
  [
    "a listen backlog that cannot be measured is risky, with the reason",
    "listen backlog",
    {},
    new Error("ss is not installed (it comes with iproute2)"),
    null,
    "risky",
    null,
  ],
  [
    "resetting clients on accept-queue overflow is risky",
    "net.ipv4.tcp_abort_on_overflow",
    { "sys/net/ipv4/tcp_abort_on_overflow": "1\n" },
    512,
    "1",
    "risky",
    "sysctl -w net.ipv4.tcp_abort_on_overflow=0",
  ],
  [
    "no request migration between reuseport listeners is risky",
    "net.ipv4.tcp_migrate_req",
    { "sys/net/ipv4/tcp_migrate_req": "0\n" },
    512,
    "0",
    "risky",
    "sysctl -w net.ipv4.tcp_migrate_req=1",
  ],
  [
    "a kernel without tcp_migrate_req is risky and says which kernel has it",
    "net.ipv4.tcp_migrate_req",
    { "sys/net/ipv4/tcp_migrate_req": null },
    512,
    null,
    "risky",
    "none on this kernel: Linux 5.14 or newer has it",
  ],
  [
    "the kernel's default port range is ok, shown with one space",
    "net.ipv4.ip_local_port_range",
    { "sys/net/ipv4/ip_local_port_range": "32768\t60999\n" },
    512,
    "32768 60999",
    "ok",
    null,
  ],
  [
    "a 101-port range is risky",
    "net.ipv4.ip_local_port_range",
    { "sys/net/ipv4/ip_local_port_range": "40000\t40100\n" },
    512,
    "40000 40100",
    "risky",
    'sysctl -w net.ipv4.ip_local_port_range="1024 65535"',
  ],
  [
    "20000 open files is risky; the hard limit needs raising too",
    "open files",
    { "self/limits": limits(20000, 20000) },
    512,
    "soft 20000, hard 20000",
    "risky",
    "ulimit -Hn 65536 && ulimit -Sn 65536",
  ],
  [
    "1024 open files under a high hard limit is bad; the soft limit is enough",
    "open files",
    { "self/limits": limits(1024, 1048576) },
    512,
    "soft 1024, hard 1048576",
    "bad",
    "ulimit -Sn 65536",
  ],
  [
    "unlimited open files is ok",
    "open files",
    { "self/limits": limits("unlimited", "unlimited") },
    512,
    "soft unlimited, hard unlimited",
    "ok",
    null,
  ],
  [
    "an unreadable limits file is risky",
    "open files",
    { "self/limits": null },
    512,
    null,
    "risky",
    "ulimit -Hn 65536 && ulimit -Sn 65536",
  ],
  [
    "a value no check knows is risky, never ok",
    "net.ipv4.tcp_syncookies",
    { "sys/net/ipv4/tcp_syncookies": "7\n" },
    512,
    "7",
    "risky",
    null,
  ],
];

for (const [guarantee, name, changes, backlog, value, verdict, fix] of cases) {
  test(`doctor unit: ${guarantee}`, async () => {
    const found = await item(name, fakeHost(changes, backlog));
    assert.equal(found.value, value, "value");
    assert.equal(found.verdict, verdict, `verdict; why: ${found.why}`);
    assert.equal(found.fix, fix, "fix");
  });
}

test("doctor unit: the reasons carry the figures that make the verdict", async () => {
  const retries = await item(
    "net.ipv4.tcp_synack_retries",
    fakeHost({ "sys/net/ipv4/tcp_synack_retries": "5\n" }),
  );
  assert.match(retries.why, /about 63 s/);
  const ports = await item(
    "net.ipv4.ip_local_port_range",
    fakeHost({ "sys/net/ipv4/ip_local_port_range": "40000 40100\n" }),
  );
  assert.match(ports.why, /^101 source ports/);
  const backlog = await item("listen backlog", fakeHost({ "sys/net/core/somaxconn": "64\n" }, 64));
  assert.match(backlog.why, /net\.core\.somaxconn \(64\) cut it down/);
  const unmeasured = await item("listen backlog", fakeHost({}, new Error("ss is not installed")));
  assert.match(unmeasured.why, /ss is not installed/);
  const missing = await item(
    "net.ipv4.tcp_migrate_req",
    fakeHost({ "sys/net/ipv4/tcp_migrate_req": null }),
  );
  assert.match(missing.why, /ENOENT/);
  assert.match(missing.why, /\/fake\/proc\/sys\/net\/ipv4\/tcp_migrate_req/);
});

test("doctor unit: where the hard open-file limit cannot be raised (no CAP_SYS_RESOURCE, a container), no ulimit is offered as the fix; the places that set it are named", async () => {
  const capped = await item("open files", {
    ...fakeHost({ "self/limits": limits(20000, 20000) }),
    canRaiseHardLimit: () => Promise.resolve(false),
  });
  assert.equal(capped.verdict, "risky");
  assert.equal(capped.fix, null, "ulimit -Hn fails here: not a fix");
  assert.match(capped.why, /A shell here cannot raise the hard limit/);
  assert.match(capped.why, /LimitNOFILE=65536/);
  assert.match(capped.why, /limits\.conf/);
  assert.match(capped.why, /--ulimit nofile=65536:65536/);
  // The soft limit alone can always be raised: that fix stays.
  const soft = await item("open files", {
    ...fakeHost({ "self/limits": limits(1024, 1048576) }),
    canRaiseHardLimit: () => Promise.resolve(false),
  });
  assert.equal(soft.fix, "ulimit -Sn 65536");
});

test("doctor: the hard-limit probe tells this host's truth: the fix it offers works in a shell here", async () => {
  const { probeHardLimitRaise } = await import("../server/doctor/hard_limit_probe.ts");
  const { spawnSync } = await import("node:child_process");
  const real = await item("open files", {});
  if (real.fix === null || !real.fix.startsWith("ulimit -Hn")) return; // nothing to raise here
  assert.equal(await probeHardLimitRaise(65536), true);
  assert.equal(spawnSync("/bin/sh", ["-c", real.fix]).status, 0, `${real.fix} fails here`);
});

test("doctor unit: exit code is 1 exactly when SYN cookies are off", async () => {
  for (const [cookies, expected] of [["0", 1], ["1", 0], ["2", 0]] as const) {
    const { io } = silentIo();
    const code = await doctorMain(
      ["--json"],
      io,
      fakeHost({ "sys/net/ipv4/tcp_syncookies": `${cookies}\n` }),
    );
    assert.equal(code, expected, `tcp_syncookies=${cookies}`);
  }
  // Unreadable is reported as risky, not as off.
  const { io } = silentIo();
  assert.equal(await doctorMain([], io, fakeHost({ "sys/net/ipv4/tcp_syncookies": null })), 0);
});

test("doctor unit: reads the real /proc layout under procRoot", async () => {
  const root = mkdtempSync(join(tmpdir(), "tallyho-fake-proc-"));
  try {
    const files = {
      ...GOOD,
      "sys/net/ipv4/tcp_syncookies": "0\n",
      "sys/net/core/somaxconn": "77\n",
    };
    for (const [path, content] of Object.entries(files)) {
      mkdirSync(dirname(join(root, path)), { recursive: true });
      writeFileSync(join(root, path), content);
    }
    const report = await diagnose({
      procRoot: root,
      probeBacklog: () => Promise.resolve({ backlog: 77, runtime: "deno" }),
    });
    const values = Object.fromEntries(report.items.map((i) => [i.name, i.value]));
    assert.equal(values["net.ipv4.tcp_syncookies"], "0");
    assert.equal(values["net.core.somaxconn"], "77");
    assert.equal(values["net.ipv4.ip_local_port_range"], "1024 65535");
    assert.equal(values["open files"], "soft 1048576, hard 1048576");
    assert.equal(report.syncookiesOff, true);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test("doctor unit: text output shows every item's verdict, value and only the needed fixes", async () => {
  const { out, io } = silentIo();
  const host = fakeHost({
    "sys/net/ipv4/tcp_syncookies": "0\n",
    "sys/net/ipv4/tcp_migrate_req": "0\n",
  });
  assert.equal(await doctorMain([], io, host), 1);
  const text = out.join("\n");
  assert.match(text, /^bad +net\.ipv4\.tcp_syncookies = 0$/m);
  assert.match(text, /^ +fix: sysctl -w net\.ipv4\.tcp_syncookies=1$/m);
  assert.match(text, /^risky +net\.ipv4\.tcp_migrate_req = 0$/m);
  assert.match(text, /^ +fix: sysctl -w net\.ipv4\.tcp_migrate_req=1$/m);
  assert.match(text, /^ok +listen backlog = 512$/m);
  assert.match(text, /^ok +open files = soft 1048576, hard 1048576$/m);
  assert.equal((text.match(/fix:/g) ?? []).length, 2, "a fix only where one is needed");
  assert.match(text, /7 ok, 1 risky, 1 bad\./);
  assert.match(text, /SYN cookies are off: exit code 1\./);
  for (const line of renderText(await diagnose(host), "bun 1.4.5")) {
    assert.ok(line.length <= 100, `line longer than 100 columns: ${line}`);
  }
});

test("doctor unit: --json prints one document with name, value, verdict, why and fix", async () => {
  const { out, io } = silentIo();
  assert.equal(
    await doctorMain(["--json"], io, fakeHost({ "sys/net/core/somaxconn": "64\n" }, 64)),
    0,
  );
  const report = JSON.parse(out.join("\n"));
  assert.equal(report.items.length, 9);
  for (const i of report.items) {
    assert.deepEqual(Object.keys(i).sort(), ["fix", "name", "value", "verdict", "why"]);
    assert.ok(["ok", "risky", "bad"].includes(i.verdict));
  }
  const somaxconn = report.items.find((i: DoctorItem) => i.name === "net.core.somaxconn");
  assert.deepEqual([somaxconn.value, somaxconn.verdict], ["64", "bad"]);
  assert.equal(report.syncookiesOff, false);
});

test("doctor unit: a bad flag is one line naming it and exit code 2", async () => {
  for (
    const [args, expected] of [
      [["--bogus"], "tallyho: Unknown option '--bogus'"],
      [["--json=yes"], "tallyho: Option '--json' takes no value"],
      [["now"], 'tallyho: Unexpected argument "now"'],
    ] as const
  ) {
    const { out, err, io } = silentIo();
    assert.equal(await doctorMain([...args], io, fakeHost()), 2, args.join(" "));
    assert.deepEqual(err, [expected, "Run 'tallyho doctor --help' for usage."]);
    assert.deepEqual(out, [], "nothing is checked");
  }
});

test("doctor unit: ss's Send-Q is read from the LISTEN row of the probed port only", () => {
  const text = [
    "State  Recv-Q Send-Q Local Address:Port  Peer Address:Port Process",
    "LISTEN 0      4096         0.0.0.0:22         0.0.0.0:*",
    "LISTEN 3      511        127.0.0.1:40123      0.0.0.0:*",
    "LISTEN 0      128            [::]:40123          [::]:*",
  ].join("\n");
  assert.equal(parseSsBacklog(text, 40123), 511);
  assert.equal(parseSsBacklog("LISTEN 0 64 127.0.0.1:9 0.0.0.0:*\n", 9), 64);
  assert.throws(
    () => parseSsBacklog(text, 4012),
    (error: Error) =>
      error instanceof RangeError && /no LISTEN socket on port 4012/.test(error.message),
  );
});

test("doctor unit: the limits file is parsed for both limits, and garbage is refused by name", () => {
  assert.deepEqual(parseOpenFileLimit(limits(1024, 524288)), { soft: 1024, hard: 524288 });
  assert.deepEqual(parseOpenFileLimit(limits("unlimited", "unlimited")), {
    soft: Infinity,
    hard: Infinity,
  });
  assert.throws(() => parseOpenFileLimit("Max processes 1 1"), /Cannot find 'Max open files'/);
  assert.throws(() => parseOpenFileLimit(limits("lots", 10)), /got "lots"/);
});

/** A self-signed certificate for CN=doctor.test valid for `days` days from now. */
function certificateFor(dir: string, days: number): string {
  return selfSignedCertificate(dir, String(days), {
    days,
    commonName: "doctor.test",
    altNames: null,
  }).cert;
}

test(
  "doctor unit: --tls-cert is ok with time left, risky within 14 days, bad (exit 3) once expired or unreadable",
  {
    skip: skipOpenssl,
  },
  async () => {
    const dir = mkdtempSync(join(tmpdir(), "tallyho-doctor-tls-"));
    try {
      const month = certificateFor(dir, 30);
      const week = certificateFor(dir, 7);
      const item = (report: { items: DoctorItem[] }) =>
        report.items.find((i) => i.name === "tls certificate")!;
      // The wall clock, as the command line reads it.
      let { out, io } = silentIo();
      assert.equal(await doctorMain(["--tls-cert", month], io, fakeHost()), 0);
      assert.match(
        out.join("\n"),
        /^ok +tls certificate = CN=doctor\.test in .*30\.crt, valid until 20\d\d-/m,
      );
      ({ out, io } = silentIo());
      assert.equal(await doctorMain(["--tls-cert", week, "--json"], io, fakeHost()), 0);
      const risky = JSON.parse(out.join("\n")).items.at(-1) as DoctorItem;
      assert.equal(risky.verdict, "risky");
      assert.match(risky.why, /expires in 6 days \(under 14\)/);
      assert.match(risky.fix!, /renew it .*kill -HUP/);
      // Judged a month and a day later: expired.
      const later = Date.now() + 31 * 86_400_000;
      ({ out, io } = silentIo());
      assert.equal(await doctorMain(["--tls-cert", month], io, { ...fakeHost(), now: later }), 3);
      const text = out.join("\n");
      assert.match(text, /^bad +tls certificate = CN=doctor\.test/m);
      assert.match(text, /It has expired/);
      assert.match(text, /The TLS certificate is unusable: exit code 3\./);
      const missing = await diagnose({ ...fakeHost(), tlsCert: join(dir, "gone.crt"), now: later });
      assert.equal(item(missing).verdict, "bad");
      assert.match(item(missing).why, /gone\.crt cannot be read as a PEM certificate/);
      assert.equal(missing.certificateBad, true);
      // Without --tls-cert there is no certificate item and nothing changes.
      assert.equal((await diagnose(fakeHost())).items.length, 9);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  },
);
