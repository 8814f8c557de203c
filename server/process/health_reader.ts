/**
 * A serving process's own resident memory and CPU time, for the report it sends each second.
 *
 * @module
 */

import process from "node:process";

/**
 * Reads the process's memory and CPU time for its report, surviving a process out of file
 * descriptors: Bun 1.4.5's `process.memoryUsage()` then throws `SystemError: Failed to get
 * memory usage` (it opens /proc), and Deno 2.9.6's answers 0. Thrown from the report's timer,
 * that printed an uncaught error with a chunk of source every second; now the last figure read
 * is reported instead, and the log says so once, and once more when it can be read again.
 */
export class HealthReader {
  readonly #log: (line: string) => void;
  #rssBytes = 0;
  #failing = false;

  /** @param log Where the two lines go. */
  constructor(log: (line: string) => void) {
    this.#log = log;
  }

  /** Resident memory (the last figure read, when it cannot be read now) and CPU seconds. */
  read(): { rssBytes: number; cpuSeconds: number } {
    let problem: string | null = null;
    try {
      const rss = process.memoryUsage().rss;
      if (rss > 0) this.#rssBytes = rss;
      else problem = "it reads 0 bytes";
    } catch (error) {
      problem = (error as Error).message;
    }
    if (problem !== null && !this.#failing) {
      this.#log(
        `cannot read this process's memory use (${problem}; out of file descriptors?): ` +
          `reporting the last figure read, ${this.#rssBytes} bytes, until it can`,
      );
    } else if (problem === null && this.#failing) {
      this.#log("reading this process's memory use again");
    }
    this.#failing = problem !== null;
    // getrusage: no descriptor needed.
    const cpu = process.cpuUsage();
    return { rssBytes: this.#rssBytes, cpuSeconds: (cpu.user + cpu.system) / 1e6 };
  }
}
