/**
 * Test fixture: an independent client written in Python's standard library, run inline.
 *
 * @module
 */

import { spawn } from "node:child_process";

/**
 * Runs a Python program with arguments and parses the JSON it prints last.
 *
 * @param program The program's source (`python3 -c`).
 * @param args Its arguments.
 * @param timeoutMs Killed after this long.
 * @param wrap A command that execs Python (such as `setpriv` to run it as another user).
 * @returns The last line of its output, parsed as JSON.
 */
export function python(
  program: string,
  args: string[],
  timeoutMs: number,
  wrap: string[] = [],
): Promise<unknown> {
  const [command, ...argv] = [...wrap, "python3", "-c", program, ...args] as [string, ...string[]];
  const child = spawn(command, argv, { stdio: ["ignore", "pipe", "pipe"] });
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
