/**
 * The shape of a process's own stdin and stdout as a line channel: what a serving child talks to
 * its supervisor over (server/process/child_main.ts, one JSON document a line).
 *
 * Each adapter reads and writes the two pipes with its runtime's own streams rather than
 * `node:process`'s `stdin` and `stdout`: on Bun 1.4.5 those load the node stream machinery and
 * four more threads, about 1 MB of a serving process's RSS at idle (docs/tuning.md, "Memory").
 *
 * Writes never block: while the supervisor does not read, they queue in memory in order (Deno's
 * `process.stdout` wrote synchronously and stalled the child's loop instead, measured by a
 * review at about 3 s). A supervisor gone fails the writes quietly (node:process's streams threw
 * an uncaught EPIPE on Deno); the child stops when its stdin ends.
 *
 * @module
 */

import type { LineSink, LineSource } from "../common/json_lines.ts";

/** This process's stdin (read) and stdout (written). */
export interface StdioChannel {
  /** stdin: `data` for each chunk, `end` once, when the other side closes it. */
  readonly source: LineSource;
  /** stdout: each write is handed on in order; its callback runs once the runtime took it. */
  readonly sink: LineSink;
}

/** Opens the channel; called once per process. */
export type OpenStdio = () => StdioChannel;

/** A `data` listener's error, told apart from the stream's own. */
class ListenerFailure {
  constructor(readonly error: unknown) {}
}

/**
 * A {@linkcode LineSource} over chunks that `read` delivers: listeners may be added at any
 * time before the first chunk, and reading starts once there is a `data` listener.
 *
 * @param read Calls `onChunk` for each chunk and resolves when the stream ends (or fails).
 */
export function lineSourceOf(
  read: (onChunk: (chunk: Uint8Array) => void) => Promise<void>,
): LineSource {
  const onData: Array<(chunk: Uint8Array) => void> = [];
  const onEnd: Array<() => void> = [];
  let started = false;
  const start = () => {
    read((chunk) => {
      for (const listener of onData) {
        try {
          listener(chunk);
        } catch (error) {
          throw new ListenerFailure(error); // ends the read
        }
      }
    }).then(() => false, (error) => {
      if (!(error instanceof ListenerFailure)) return false; // the pipe failed: an end, as a close
      // A listener's error is a bug, not the end of the channel: no `end` (which a child takes
      // for its supervisor going away, and stops quietly); thrown again, uncaught, it ends the
      // process with its stack (exit 1), as a stream listener's error did.
      queueMicrotask(() => {
        throw error.error;
      });
      return true;
    }).then((failed) => {
      if (!failed) { for (const listener of onEnd) listener(); }
    });
  };
  return {
    on(event: "data" | "end" | "close", listener: (chunk: Uint8Array) => void) {
      if (event === "data") {
        onData.push(listener);
        // Started once, after this task: listeners added in it all see the first chunk.
        if (!started) queueMicrotask(start);
        started = true;
      } else onEnd.push(listener as () => void);
      return this;
    },
  } as LineSource;
}
