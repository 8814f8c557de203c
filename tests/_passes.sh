# The planning half of tests/run_all.sh, sourced by it (and by tests/passes_test.ts): which
# runner runs which test file against which target, read from tests/passes.txt (its header says
# the format).

# plan_passes MANIFEST SKIP_BINARY [FILE...]: prints one line per run, "PASS solo|shared FILE
# [PATTERN]", PASS being bun, deno, binary (none when SKIP_BINARY is true) or release, for every
# tests/*_test.ts (or only the FILEs given), largest file first (a rough guess at the longest, so
# the slow ones start early). A file the manifest does not list runs in bun and deno, solo. A line
# that names no test file, says something unknown or repeats a file is reported, and so is a FILE
# that is no test file; the status is then 1.
plan_passes() {
  local manifest="$1" skip_binary="$2" files only
  shift 2
  files=$(ls -S tests/*_test.ts)
  only=$(printf '%s\n' "$@")
  awk -v skip_binary="$skip_binary" -v files="$files" -v only="$only" '
    function problem(message) {
      print "tests/passes.txt:" FNR ": " message > "/dev/stderr"
      bad = 1
    }
    BEGIN {
      n = split(files, order, "\n")
      for (i = 1; i <= n; i++) exists[order[i]] = 1
      split(only, chosen, "\n")
      for (i in chosen) {
        if (chosen[i] == "") continue
        if (!(chosen[i] in exists)) {
          print "run_all: " chosen[i] " is no test file (tests/NAME_test.ts)" > "/dev/stderr"
          bad = 1
        }
        wanted[chosen[i]] = 1
        picking = 1
      }
    }
    /^[ \t]*(#|$)/ { next }
    {
      file = "tests/" $1
      if (!(file in exists)) { problem($1 " is no test file in tests/"); next }
      if (file in where) { problem($1 " is listed twice"); next }
      if ($2 != "both" && $2 != "once" && $2 != "deno" && $2 != "release") {
        problem($1 ": the second word must be both, once, deno or release, not \"" $2 "\"")
        next
      }
      where[file] = $2
      mode[file] = "shared"
      for (i = 3; i <= NF; i++) {
        if ($i == "solo") mode[file] = "solo"
        else if ($i == "binary") { binary[file] = ""; break }
        else if ($i ~ /^binary=/) {
          pattern = $0
          sub(/^[^=]*binary=/, "", pattern)
          if (pattern == "") problem($1 ": binary= needs a pattern")
          binary[file] = pattern
          break
        } else problem($1 ": unknown word \"" $i "\" (solo, binary or binary=PATTERN)")
      }
    }
    END {
      for (i = 1; i <= n; i++) {
        file = order[i]
        if (picking && !(file in wanted)) continue
        w = (file in where) ? where[file] : "both"
        m = (file in mode) ? mode[file] : "solo"
        if (w == "release") { print "release solo " file; continue }
        if (w != "deno") print "bun " m " " file
        if (w != "once") print "deno " m " " file
        if ((file in binary) && skip_binary != "true") {
          print "binary " m " " file (binary[file] == "" ? "" : " " binary[file])
        }
      }
      exit bad
    }
  ' "$manifest"
}
