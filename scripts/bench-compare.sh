#!/usr/bin/env bash
# Runs the same benchmarks on this checkout and on earlier revisions, alternating, so that a
# noisy machine hits every build alike: bash scripts/bench-compare.sh ROUNDS SUITES REV...
# e.g. bash scripts/bench-compare.sh 5 "memory storage" 467fb3c f74b5b7
# Each revision is built (addon included) in a git worktree under ${BENCH_COMPARE_DIR:-/tmp/shoal-bench-compare};
# every run's output is kept there as <rev>-r<round>.txt, then each figure is printed per build
# (median and runs) with its ratio to the peer measured in the same run (scripts/bench-compare-table.js).
set -euo pipefail
rounds=$1; suites=$2; shift 2
here=$(cd "$(dirname "$0")/.." && pwd)
out=${BENCH_COMPARE_DIR:-/tmp/shoal-bench-compare}
mkdir -p "$out"
builds=("HEAD:$here")
for rev in "$@"; do
  dir="$out/tree-$rev"
  if [ ! -d "$dir" ]; then
    git -C "$here" worktree add -q --detach "$dir" "$rev"
    (cd "$dir" && cp -a "$here/node_modules" . && npx node-gyp rebuild > "$out/build-$rev.log" 2>&1 && npm run build >> "$out/build-$rev.log" 2>&1)
  fi
  builds+=("$rev:$dir")
done
for round in $(seq 1 "$rounds"); do
  for build in "${builds[@]}"; do
    name=${build%%:*}; dir=${build#*:}
    { echo "== $name round $round $(date -u +%H:%M:%S) load $(cut -d' ' -f1-3 /proc/loadavg)"
      (cd "$dir" && node --expose-gc dist/bench/run.js $suites)
    } > "$out/$name-r$round.txt" 2>&1
  done
done
node "$here/scripts/bench-compare-table.js" "$out" HEAD "$@"
