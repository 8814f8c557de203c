/**
 * The one request/response correlation of the message channels (server/common/pending_requests.ts):
 * each answer reaches the request with its id, once; a late or unknown id changes nothing; failing
 * all rejects every request still waiting.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { PendingRequests } from "../server/common/pending_requests.ts";

test("pending requests: answers reach their own requests, in any order, once", async () => {
  const requests = new PendingRequests<number, string>();
  const sent: number[] = [];
  const first = requests.ask((id) => sent.push(id), "first");
  const second = requests.ask((id) => sent.push(id), "second");
  const fireAndForget = requests.nextId();
  assert.equal(new Set([...sent, fireAndForget]).size, 3, "every id is fresh");
  assert.equal(requests.tagOf(sent[1]!), "second");
  assert.equal(requests.answer(fireAndForget, 7), false, "nobody waits for that id");
  assert.equal(requests.answer(sent[1]!, 20), true);
  assert.equal(requests.answer(sent[1]!, 21), false, "a second answer is late");
  assert.equal(requests.tagOf(sent[1]!), undefined);
  assert.equal(requests.answer(sent[0]!, 10), true);
  assert.deepEqual(await Promise.all([first, second]), [10, 20]);
});

test("pending requests: a refusal fails its request; failing all fails every one still waiting", async () => {
  const requests = new PendingRequests<number>();
  const ids: number[] = [];
  const refused = requests.ask((id) => ids.push(id));
  const a = requests.ask((id) => ids.push(id));
  const b = requests.ask((id) => ids.push(id));
  assert.equal(requests.fail(ids[0]!, new Error("denied")), true);
  await assert.rejects(refused, /denied/);
  requests.failAll(new Error("the other side is gone"));
  await assert.rejects(a, /the other side is gone/);
  await assert.rejects(b, /the other side is gone/);
  assert.equal(requests.answer(ids[1]!, 1), false, "nothing waits any more");
});
