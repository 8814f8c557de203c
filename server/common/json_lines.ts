/**
 * A message channel over a pair of byte streams: one JSON document per line. The supervisor
 * talks to each child over the child's stdin and stdout; the same code runs on Bun and Deno.
 *
 * @module
 */

/** The readable half (a child's stdout, or this process's stdin). */
export interface LineSource {
  on(event: "data", listener: (chunk: Uint8Array | string) => void): unknown;
  on(event: "end" | "close", listener: () => void): unknown;
}

/** The writable half. */
export interface LineSink {
  write(text: string, callback?: (error?: Error | null) => void): boolean;
}

/**
 * Reads JSON lines from `source`, calling `onMessage` for each, and `onEnd` once when it ends.
 * A line that is not JSON is reported through `onBadLine` and skipped.
 *
 * @param source The stream.
 * @param handlers What to call.
 */
export function readJsonLines<T>(
  source: LineSource,
  handlers: { onMessage(message: T): void; onEnd(): void; onBadLine?(line: string): void },
): void {
  const decoder = new TextDecoder();
  let pending = "";
  let ended = false;
  source.on("data", (chunk) => {
    pending += typeof chunk === "string" ? chunk : decoder.decode(chunk, { stream: true });
    let newline: number;
    while ((newline = pending.indexOf("\n")) !== -1) {
      const line = pending.slice(0, newline);
      pending = pending.slice(newline + 1);
      if (line.trim() === "") continue;
      let message: T;
      try {
        message = JSON.parse(line) as T;
      } catch {
        handlers.onBadLine?.(line);
        continue;
      }
      handlers.onMessage(message);
    }
  });
  const end = () => {
    if (ended) return;
    ended = true;
    handlers.onEnd();
  };
  source.on("end", end);
  source.on("close", end);
}

/**
 * Writes one message as a JSON line.
 *
 * @param sink The stream.
 * @param message Anything JSON can hold.
 * @returns A promise that resolves once the line is handed to the stream.
 */
export function writeJsonLine(sink: LineSink, message: unknown): Promise<void> {
  return new Promise((resolve) => {
    sink.write(JSON.stringify(message) + "\n", () => resolve());
  });
}
