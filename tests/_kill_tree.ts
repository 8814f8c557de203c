/**
 * Test fixture: pipelined bursts from several clients, then `kill -9` of a whole server tree
 * (supervisor and every child at once) at a random moment, as a crash would.
 *
 * @module
 */

import process from "node:process";
import { LineClient, replyNumber } from "./_client.ts";
import { isAlive, type TestServer } from "./_server.ts";
import { sleep, waitUntil } from "./_wait.ts";

/**
 * Fires bursts of 200 lines every 5 ms from `clients` connections, kills the whole tree after a
 * random delay in `[minMs, maxMs)`, and waits until every killed process is gone.
 *
 * @param server A server started with line framing and message numbering.
 * @param clients How many connections fire.
 * @param minMs Shortest delay before the kill.
 * @param maxMs Longest delay before the kill.
 * @returns Every number the clients received before the kill.
 */
export async function burstThenKillTree(
  server: TestServer,
  clients: number,
  minMs: number,
  maxMs: number,
): Promise<number[]> {
  const open = await Promise.all(
    Array.from({ length: clients }, () => LineClient.connect(server.port)),
  );
  const firing = setInterval(() => {
    for (const client of open) if (!client.closed) client.send("n\n".repeat(200));
  }, 5);
  await sleep(minMs + Math.random() * (maxMs - minMs));
  const pids = [server.pid, ...server.childPids().values()];
  for (const pid of pids) process.kill(pid, "SIGKILL");
  clearInterval(firing);
  await server.exited;
  const numbers: number[] = [];
  for (const client of open) {
    for (const line of await client.lines(0, 0)) numbers.push(replyNumber(line));
    client.close();
  }
  // Each gone, or 2 s passed (the caller's checks then say what is left).
  await waitUntil(() => !pids.some(isAlive), { what: "the killed tree gone", timeoutMs: 2000 })
    .catch(() => {});
  return numbers;
}
