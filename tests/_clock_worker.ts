// A worker that aligns its monotonic clock with the main thread's as a server thread does, then
// answers each "read" with its clock. For tests/clock_jump_test.ts.
import { alignClock, monotonicNow } from "../server/common/clock.ts";

const scope = globalThis as unknown as {
  onmessage: ((event: MessageEvent<{ type: string; now?: number }>) => void) | null;
  postMessage(message: unknown): void;
};

let answer: ((now: number) => void) | null = null;
scope.onmessage = (event) => {
  if (event.data.type === "clock") answer?.(event.data.now!);
  else if (event.data.type === "read") scope.postMessage({ type: "now", now: monotonicNow() });
  else if (event.data.type === "align") {
    alignClock(() => {
      const next = new Promise<number>((resolve) => (answer = resolve));
      scope.postMessage({ type: "clock" });
      return next;
    }).then((roundTrip) => scope.postMessage({ type: "aligned", roundTrip }));
  }
};
scope.postMessage({ type: "ready" });
