/**
 * Deno's {@linkcode StdioChannel}: `Deno.stdin.readable` and a writer of `Deno.stdout.writable`.
 *
 * @module
 */

import { lineSourceOf, type StdioChannel } from "./stdio_channel.ts";

/** Opens this process's stdin and stdout as a line channel. */
export function openStdioDeno(): StdioChannel {
  const writer = Deno.stdout.writable.getWriter();
  const encoder = new TextEncoder();
  return {
    source: lineSourceOf(async (onChunk) => {
      for await (const chunk of Deno.stdin.readable) onChunk(chunk);
    }),
    sink: {
      write(text, callback) {
        // The writer keeps the writes in order; a pipe the supervisor no longer reads rejects.
        writer.write(encoder.encode(text)).then(() => callback?.(), (error) => callback?.(error));
        return true;
      },
    },
  };
}
