// Worker for shared_counter_test: takes numbers from a shared counter as fast as it can.
import { SharedCounter } from "../server/shared_counter.ts";

const scope = globalThis as unknown as {
  onmessage: (event: MessageEvent) => void;
  postMessage(message: unknown): void;
};
scope.onmessage = (event) => {
  const { buffer, first, takes, batch } = event.data as {
    buffer: SharedArrayBuffer;
    first: number;
    takes: number;
    batch: number;
  };
  const counter = new SharedCounter(buffer, first);
  const got = new Float64Array(takes * batch);
  let i = 0;
  for (let t = 0; t < takes; t++) {
    const start = counter.take(batch);
    for (let k = 0; k < batch; k++) got[i++] = start + k;
  }
  scope.postMessage(got);
};
