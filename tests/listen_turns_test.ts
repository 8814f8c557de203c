import assert from "node:assert/strict";
import { test } from "node:test";
import { endTurn, takeTurn } from "../server/common/listen_turns.ts";

test("listen turns: one holder at a time; a wait ends when the turn is given back, or at its limit; only the holder's id gives it back", () => {
  const lock = new Int32Array(new SharedArrayBuffer(4));
  const first = { lock, holder: 1 };
  const second = { lock, holder: 2 };
  assert.equal(takeTurn(first, 10), true);
  assert.equal(lock[0], 1, "the holder's id is in the lock");
  assert.equal(takeTurn(second, 5), false, "held: the wait ends at its limit");
  endTurn(second); // not the holder: nothing is given back
  assert.equal(lock[0], 1);
  // A thread ended inside its turn: the pool gives it back by that thread's id.
  endTurn(first);
  assert.equal(lock[0], 0);
  assert.equal(takeTurn(second, 5), true);
  endTurn(second);
  assert.equal(lock[0], 0);
});
