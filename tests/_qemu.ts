/**
 * Test fixture: runs aarch64 executables on this x86-64 host through binfmt_misc and Debian's
 * `qemu-user-static`, for the release's arm64 smoke test (issue 22).
 *
 * binfmt_misc is mounted in a private mount namespace held by a bounded `sleep` (nothing is left
 * mounted on the host), an entry for aarch64 ELF files is registered through it, and the entry is
 * removed again at the end. Since Linux 6.7 the kernel drops a binfmt_misc instance's entries when
 * its last mount goes, so the holder must live while the test runs; on older kernels the entry is
 * global, hence the explicit removal. An entry that handles aarch64 already (binfmt-support's
 * `qemu-aarch64`) is used and left alone.
 *
 * `QEMU_LD_PREFIX=/usr/aarch64-linux-gnu` (Debian's `libc6-arm64-cross`) is where qemu finds the
 * aarch64 loader and C library; it is inherited by the serving processes tallyho starts, so they
 * find them too.
 *
 * @module
 */

import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import process from "node:process";

/** The tools the arm64 test needs, with their Debian packages. */
export const QEMU_TOOLS: [string, string][] = [
  ["qemu-aarch64-static", "qemu-user-static"],
  ["/usr/aarch64-linux-gnu/lib/ld-linux-aarch64.so.1", "libc6-arm64-cross"],
  ["unshare", "util-linux"],
  ["nsenter", "util-linux"],
  ["python3", "python3"],
];

/** The environment an aarch64 tallyho needs beside the host's. */
export const QEMU_ENV = { QEMU_LD_PREFIX: "/usr/aarch64-linux-gnu" };

const NAME = `tallyho-test-aarch64-${process.pid}`;
const DIR = "/proc/sys/fs/binfmt_misc";
// qemu's own registration for aarch64 (scripts/qemu-binfmt-conf.sh): ELF64, little-endian, EM_AARCH64.
const MAGIC =
  "\\x7fELF\\x02\\x01\\x01\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x02\\x00\\xb7\\x00";
const MASK =
  "\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\x00\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\xfe\\xff\\xff\\xff";

/** A binfmt_misc registration held for the test. */
export interface Aarch64Binfmt {
  /** Whether this fixture registered the entry (false: one was there). */
  readonly registered: boolean;
  /** Removes the entry it registered and lets go of the mount. */
  release(): void;
}

/**
 * Makes aarch64 executables run here through qemu, until `release()`.
 *
 * @param boundSeconds How long the holder lives at most, whatever happens to the test.
 */
export async function holdAarch64Binfmt(boundSeconds = 900): Promise<Aarch64Binfmt> {
  const script = [
    "set -e",
    `mount -t binfmt_misc binfmt_misc ${DIR}`,
    // An existing entry for aarch64 serves; else register one ('F': qemu is opened now).
    `if grep -qs 'magic 7f454c460201010000000000000000000200b700' ${DIR}/*; then echo existing; else`,
    `  printf '%s' ':${NAME}:M::${MAGIC}:${MASK}:/usr/bin/qemu-aarch64-static:F' >${DIR}/register`,
    "  echo registered",
    "fi",
    `exec sleep ${boundSeconds}`,
  ].join("\n");
  const holder: ChildProcess = spawn("unshare", [
    "--mount",
    "--propagation",
    "private",
    "sh",
    "-c",
    script,
  ], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  holder.stdout!.on("data", (chunk: Buffer) => (output += chunk.toString()));
  holder.stderr!.on("data", (chunk: Buffer) => (output += chunk.toString()));
  const deadline = Date.now() + 10_000;
  while (!/existing|registered/.test(output)) {
    if (holder.exitCode !== null || Date.now() > deadline) {
      holder.kill("SIGKILL");
      throw new Error(`cannot register qemu-aarch64 with binfmt_misc: ${output}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  const registered = output.includes("registered");
  return {
    registered,
    release: () => {
      if (registered) {
        spawnSync("nsenter", [
          "-t",
          String(holder.pid),
          "-m",
          "--",
          "sh",
          "-c",
          `echo -1 >${DIR}/${NAME}`,
        ]);
      }
      holder.kill("SIGKILL");
    },
  };
}
