/**
 * Entry point of every worker thread: picks the runtime and serves the thread (serve_thread.ts)
 * over the worker's `self`. A pool of one thread does not start one (see inline_thread.ts).
 *
 * @module
 */

import { runtime } from "../adapters/mod.ts";
import { serveThread, type ThreadChannel } from "./serve_thread.ts";

// `self` in a worker on both runtimes; declared narrowly so this file needs no DOM or worker lib.
serveThread(globalThis as unknown as ThreadChannel, runtime, true);
