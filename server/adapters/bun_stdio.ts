/**
 * Bun's {@linkcode StdioChannel}: `Bun.stdin.stream()` and a `Bun.stdout` writer.
 *
 * @module
 */

import { lineSourceOf, type StdioChannel } from "./stdio_channel.ts";

interface BunFileSink {
  write(chunk: string): number;
  flush(): number | Promise<number>;
}

interface BunStdio {
  stdin: { stream(): ReadableStream<Uint8Array> };
  stdout: { writer(): BunFileSink };
}

/** Opens this process's stdin and stdout as a line channel. */
export function openStdioBun(): StdioChannel {
  const bun = (globalThis as unknown as { Bun: BunStdio }).Bun;
  const writer = bun.stdout.writer();
  return {
    source: lineSourceOf(async (onChunk) => {
      for await (const chunk of bun.stdin.stream()) onChunk(chunk);
    }),
    sink: {
      write(text, callback) {
        try {
          writer.write(text);
          // A pipe the supervisor no longer reads (it is gone): the write fails, and the child
          // stops when its stdin closes.
          Promise.resolve(writer.flush()).then(() => callback?.(), (error) => callback?.(error));
        } catch (error) {
          queueMicrotask(() => callback?.(error as Error));
        }
        return true;
      },
    },
  };
}
