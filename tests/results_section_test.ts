import { test } from "node:test";
import assert from "node:assert/strict";
import { sectionOf, withSection } from "../bench/results_section.ts";

test("a section is appended, then replaced in place, and the others are kept", () => {
  let file = withSection("", "anchors", "## Anchors\n\nfirst");
  assert.match(file, /^# tallyho's measured figures/);
  file = withSection(file, "million", "## Million\n\nheld");
  file = withSection(file, "anchors", "## Anchors\n\nsecond");
  assert.equal(sectionOf(file, "anchors"), "## Anchors\n\nsecond");
  assert.equal(sectionOf(file, "million"), "## Million\n\nheld");
  assert.ok(file.indexOf("section anchors") < file.indexOf("section million"), "order kept");
  assert.equal(file.match(/<!-- section anchors -->/g)?.length, 1);
});

test("a bad section name or an unclosed section is refused with the name", () => {
  assert.throws(() => withSection("", "Bad Name", "x"), /'Bad Name'/);
  assert.throws(
    () => withSection("<!-- section a -->\nx\n", "a", "y"),
    /no closing '<!-- \/section a -->'/,
  );
  assert.equal(sectionOf("nothing here", "a"), null);
});
