/**
 * tallyho doctor --connections N judged on fake hosts: how many processes N needs under the
 * open-file limit, and the settings a million connections need, each with its verdict and fix.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { doctorMain } from "../cli/doctor.ts";
import { diagnose, type DoctorItem, type DoctorOptions } from "../server/doctor/mod.ts";

/** This project's machine as measured: 20,000 files a process, 24 GiB, stock TCP memory. */
const HOST: Record<string, string> = {
  "sys/net/ipv4/tcp_syncookies": "1\n",
  "sys/net/ipv4/tcp_max_syn_backlog": "2048\n",
  "sys/net/ipv4/tcp_synack_retries": "2\n",
  "sys/net/core/somaxconn": "4096\n",
  "sys/net/ipv4/tcp_abort_on_overflow": "0\n",
  "sys/net/ipv4/tcp_migrate_req": "1\n",
  "sys/net/ipv4/ip_local_port_range": "32768\t60999\n",
  "sys/fs/nr_open": "1048576\n",
  "sys/fs/file-max": "2466177\n",
  "sys/net/ipv4/tcp_mem": "287901\t383868\t575802\n",
  "meminfo": "MemTotal:       24684000 kB\nMemFree:        23000000 kB\n" +
    "MemAvailable:   23068672 kB\n",
  "self/limits":
    "Limit                     Soft Limit           Hard Limit           Units     \n" +
    "Max open files            20000                20000                files     \n",
};

function fakeHost(changes: Record<string, string> = {}, connections?: number): DoctorOptions {
  const files: Record<string, string> = { ...HOST, ...changes };
  return {
    procRoot: "/fake/proc",
    readFile: (path) => {
      const content = files[path.slice("/fake/proc/".length)];
      return content === undefined
        ? Promise.reject(Object.assign(new Error(`ENOENT: ${path}`), { code: "ENOENT" }))
        : Promise.resolve(content);
    },
    probeBacklog: () => Promise.resolve({ backlog: 512, runtime: "bun" }),
    canRaiseHardLimit: () => Promise.resolve(true),
    ...(connections === undefined ? {} : { connections }),
  };
}

function item(items: DoctorItem[], name: string): DoctorItem {
  const found = items.find((i) => i.name === name);
  assert.ok(found, `no item ${name} in ${items.map((i) => i.name).join(", ")}`);
  return found;
}

test("doctor capacity unit: a million on 20,000 files a process needs 51 serving processes", async () => {
  const report = await diagnose(fakeHost({}, 1_000_000));
  const plan = report.capacity!;
  assert.equal(plan.perServerProcess, 19_744);
  assert.equal(plan.serverProcesses, 51);
  assert.equal(plan.clientProcesses, 52);
  // Half of 28,232 ports a pair: connect() crawls once one parity is taken.
  assert.equal(plan.addresses, 71);
  assert.deepEqual(plan.items.map((i) => i.name), [
    "open files per process",
    "fs.nr_open",
    "fs.file-max",
    "net.ipv4.tcp_mem",
    "net.core.somaxconn",
    "net.ipv4.tcp_max_syn_backlog",
    "ephemeral ports per address",
    "memory available",
  ]);
  assert.equal(item(plan.items, "open files per process").verdict, "ok");
  assert.equal(item(plan.items, "fs.file-max").verdict, "ok");
  // 575,802 pages cannot give each of a million busy sockets a page.
  const tcpMem = item(plan.items, "net.ipv4.tcp_mem");
  assert.equal(tcpMem.verdict, "risky");
  assert.equal(tcpMem.fix, `sysctl -w net.ipv4.tcp_mem="500000 750000 2000000"`);
  assert.equal(item(plan.items, "memory available").verdict, "ok");
});

test("doctor capacity unit: past 64 processes the open-file limit is bad, with the ulimit that fits", async () => {
  const plan = (await diagnose(fakeHost({}, 2_000_000))).capacity!;
  const files = item(plan.items, "open files per process");
  assert.equal(plan.serverProcesses, 102);
  assert.equal(files.verdict, "bad");
  assert.equal(files.fix, "ulimit -Hn 31506 && ulimit -Sn 31506");
});

test("doctor capacity unit: too little memory or file-max is bad; unreadable values are risky", async () => {
  const small = (await diagnose(fakeHost({
    "meminfo": "MemTotal: 4194304 kB\nMemAvailable:    2097152 kB\n",
    "sys/fs/file-max": "500000\n",
  }, 1_000_000))).capacity!;
  assert.equal(item(small.items, "memory available").verdict, "bad");
  assert.equal(item(small.items, "fs.file-max").verdict, "bad");
  assert.equal(item(small.items, "fs.file-max").fix, "sysctl -w fs.file-max=2100000");
  const hidden = (await diagnose(fakeHost({ "meminfo": "" }, 1000))).capacity!;
  assert.equal(item(hidden.items, "memory available").verdict, "risky");
  assert.equal(item(hidden.items, "memory available").value, null);
});

test("doctor capacity unit: without --connections there is no plan; with it text and JSON carry one", async () => {
  assert.equal((await diagnose(fakeHost())).capacity, undefined);
  const out: string[] = [];
  const io = { out: (l: string) => out.push(l), err: (l: string) => out.push(l) };
  assert.equal(await doctorMain(["--connections", "1000000"], io, fakeHost()), 0);
  const text = out.join("\n");
  assert.match(text, /For 1,000,000 connections at once on this host:/);
  assert.match(text, /Needs 51 serving processes of 19,744 connections: tallyho --processes 51/);
  out.length = 0;
  assert.equal(await doctorMain(["--json", "--connections", "60000"], io, fakeHost()), 0);
  const json = JSON.parse(out.join("\n"));
  assert.equal(json.capacity.serverProcesses, 4);
  assert.equal(json.capacity.connections, 60000);
});

test("doctor capacity unit: a bad --connections is one line naming it and exit code 2", async () => {
  const err: string[] = [];
  const io = { out: () => {}, err: (l: string) => err.push(l) };
  assert.equal(await doctorMain(["--connections", "lots"], io, fakeHost()), 2);
  assert.equal(
    err[0],
    `tallyho: 'connections' must be a whole number from 1 to 100000000: got "lots"`,
  );
});
