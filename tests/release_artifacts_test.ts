/**
 * What `npm run release` (release/build.sh) made, checked file by file (issue 22): SHA256SUMS
 * over exactly the five artifacts, each archive's contents, each x86-64 binary's own account of
 * its version, commit and target, and the Debian packages' fields, files and scripts. Runs in npm
 * test's release stage (tests/_release.ts).
 *
 * @module
 */

import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { ROOT } from "./_server.ts";
import { mustRun, releaseSkip, requireReleaseTools, VERSION } from "./_release.ts";

const TOOLS: [string, string][] = [
  ["dpkg-deb", "dpkg"],
  ["systemd-analyze", "systemd"],
  ["tar", "tar"],
];
const skip = releaseSkip(TOOLS);
const TARGETS = ["x64", "x64-baseline", "arm64"] as const;
const ARCHIVE = (target: string) => `tallyho-${VERSION}-linux-${target}.tar.gz`;
const DEB = (arch: string) => `tallyho_${VERSION}_${arch}.deb`;

function sha256(path: string): string {
  return createHash("sha256").update(readFileSync(path)).digest("hex");
}

/** Each archive unpacked once (gunzipping 50 MB is the slow part), removed after the tests. */
const unpacked = new Map<string, string>();
after(() => {
  for (const dir of unpacked.values()) rmSync(dir, { recursive: true, force: true });
});

/** The directory an archive's files are in, unpacked on first use. */
function unpack(release: string, target: string): string {
  let dir = unpacked.get(target);
  if (dir === undefined) {
    dir = mkdtempSync(join(tmpdir(), "tallyho-archive-"));
    mustRun("tar", ["-xzf", join(release, ARCHIVE(target)), "-C", dir]);
    unpacked.set(target, dir);
  }
  return join(dir, `tallyho-${VERSION}-linux-${target}`);
}

function inTemp<T>(body: (dir: string) => T): T {
  const dir = mkdtempSync(join(tmpdir(), "tallyho-artifacts-"));
  try {
    return body(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test(
  "[release] artifacts: SHA256SUMS names the three archives and the two packages, and each sum is right",
  {
    skip,
  },
  () => {
    const release = requireReleaseTools(TOOLS);
    const lines = readFileSync(join(release, "SHA256SUMS"), "utf8").trim().split("\n");
    const sums = new Map(lines.map((line) => {
      const [sum, file] = line.split(/\s+\*?/) as [string, string];
      return [file, sum];
    }));
    assert.deepEqual(
      [...sums.keys()].sort(),
      [...TARGETS.map(ARCHIVE), DEB("amd64"), DEB("arm64")].sort(),
    );
    for (const [file, sum] of sums) assert.equal(sha256(join(release, file)), sum, file);
  },
);

test(
  "[release] artifacts: each archive holds the binary, LICENSE, README.txt, the unit and an example configuration, owned by root",
  {
    skip,
  },
  () => {
    const release = requireReleaseTools(TOOLS);
    for (const target of TARGETS) {
      const listing = mustRun("tar", ["-tvzf", join(release, ARCHIVE(target))]).trim().split("\n");
      const name = `tallyho-${VERSION}-linux-${target}`;
      const files = listing.map((line) => {
        const [mode, owner] = line.split(/\s+/) as [string, string];
        return `${mode} ${owner} ${line.slice(line.lastIndexOf(" ") + 1)}`;
      });
      assert.deepEqual(files, [
        `drwxr-xr-x 0/0 ${name}/`,
        `-rw-r--r-- 0/0 ${name}/LICENSE`,
        `-rw-r--r-- 0/0 ${name}/README.txt`,
        `-rwxr-xr-x 0/0 ${name}/tallyho`,
        `-rw-r--r-- 0/0 ${name}/tallyho.json`,
        `-rw-r--r-- 0/0 ${name}/tallyho.service`,
      ], target);
      const unit = readFileSync(join(unpack(release, target), "tallyho.service"), "utf8");
      assert.equal(
        unit,
        readFileSync(join(ROOT, "docs/tallyho.service"), "utf8"),
        "the unit in docs/",
      );
      const readme = readFileSync(join(unpack(release, target), "README.txt"), "utf8");
      assert.match(
        readme,
        new RegExp(`^tallyho ${VERSION.replaceAll(".", "\\.")} for linux-${target} `),
      );
    }
  },
);

test(
  "[release] artifacts: the x86-64 binaries run here and name their version, commit, build date and target; check --quiet is one line",
  {
    skip,
  },
  () => {
    const release = requireReleaseTools(TOOLS);
    const head = mustRun("git", ["-C", ROOT, "rev-parse", "--short=12", "HEAD"]).trim();
    for (const target of ["x64", "x64-baseline"]) {
      const binary = join(unpack(release, target), "tallyho");
      const version = mustRun(binary, ["--version"]).trim();
      const match = new RegExp(
        `^tallyho ${VERSION.replaceAll(".", "\\.")} \\(commit ([0-9a-f]{12})(-dirty)?, built ` +
          `(\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\dZ), for linux-${target}; bun \\d+\\.\\d+\\.\\d+\\)$`,
      ).exec(version);
      assert.ok(match, version);
      assert.equal(match[1], head, "built from this commit");
      if (match[2] === undefined) {
        const committed = mustRun("git", ["-C", ROOT, "log", "-1", "--format=%cI"]).trim();
        assert.equal(
          match[3],
          new Date(committed).toISOString().replace(".000Z", "Z"),
          "dated the commit",
        );
      }
      const config = join(unpack(release, target), "tallyho.json");
      const check = spawnSync(binary, [
        "check",
        "--quiet",
        "--config",
        config,
        "--port",
        "0",
        "--admin",
        "127.0.0.1:0",
      ], {
        encoding: "utf8",
        env: { TALLYHO_ADMIN_TOKEN: "t".repeat(32), PATH: "/usr/bin:/bin" },
      });
      assert.equal(check.status, 0, check.stderr);
      assert.equal(check.stdout, "", "no configuration dump");
      assert.equal(check.stderr.trim().split("\n").length, 1, check.stderr);
      assert.match(check.stderr, /^tallyho check: ok: /);
    }
  },
);

test(
  "[release] artifacts: the Debian packages: fields, the binary of their archive, the unit for /usr/bin, the configuration as a conffile, and maintainer scripts that parse",
  {
    skip,
  },
  () => {
    const release = requireReleaseTools(TOOLS);
    for (const [arch, target] of [["amd64", "x64-baseline"], ["arm64", "arm64"]] as const) {
      const deb = join(release, DEB(arch));
      const field = (name: string) => mustRun("dpkg-deb", ["-f", deb, name]).trim();
      assert.equal(field("Package"), "tallyho");
      assert.equal(field("Version"), VERSION);
      assert.equal(field("Architecture"), arch);
      assert.match(
        field("Depends"),
        /^libc6 \(>= 2\.17\), init-system-helpers \(>= 1\.54~\), procps$/,
      );
      inTemp((dir) => {
        mustRun("dpkg-deb", ["-R", deb, dir]);
        const listing = mustRun("dpkg-deb", ["-c", deb]);
        assert.match(listing, /^-rwxr-xr-x root\/root .* \.\/usr\/bin\/tallyho$/m);
        assert.match(
          listing,
          /^-rw-r--r-- root\/root .* \.\/lib\/systemd\/system\/tallyho\.service$/m,
        );
        assert.match(listing, /^-rw-r--r-- root\/root .* \.\/etc\/tallyho\/tallyho\.json$/m);
        assert.equal(
          readFileSync(join(dir, "DEBIAN/conffiles"), "utf8"),
          "/etc/tallyho/tallyho.json\n",
        );
        assert.equal(
          sha256(join(dir, "usr/bin/tallyho")),
          sha256(join(unpack(release, target), "tallyho")),
          `the ${arch} package carries the linux-${target} binary`,
        );
        const unit = readFileSync(join(dir, "lib/systemd/system/tallyho.service"), "utf8");
        assert.doesNotMatch(unit, /\/usr\/local\/bin/);
        assert.match(unit, /^ExecStart=\/usr\/bin\/tallyho serve /m);
        // Verified with the binary's path pointed at a stand-in, as tests/systemd_unit_test.ts does.
        const stub = join(dir, "stub");
        writeFileSync(stub, "#!/bin/sh\nexit 0\n", { mode: 0o755 });
        const checked = join(dir, "tallyho.service");
        writeFileSync(checked, unit.replaceAll("/usr/bin/tallyho", stub));
        const verify = spawnSync("systemd-analyze", ["verify", "--man=no", checked], {
          encoding: "utf8",
        });
        assert.equal(verify.status, 0, verify.stderr);
        assert.equal(`${verify.stdout}${verify.stderr}`.trim(), "", "no warning");
        for (const script of ["postinst", "prerm", "postrm"]) {
          assert.equal(mustRun("stat", ["-c", "%a", join(dir, "DEBIAN", script)]).trim(), "755");
          mustRun("sh", ["-n", join(dir, "DEBIAN", script)]);
        }
      });
    }
  },
);
