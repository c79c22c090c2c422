#!/usr/bin/env bash
# Instruction counts per decision, both sides and the ratio, from callgrind (repeatable on a
# noisy machine, unlike times). Every measured run of one side is marked in the bench
# (BENCH_CG_BEGIN/END: callgrind zeroes its counters, runs it, dumps them under a label);
# this script runs the bench once under callgrind and sums the dumps per benchmark and side.
# The request-making loop alone ("requests") is subtracted from both sides of the per-kind
# rows, so the figures are the decision's own instructions.
#
# usage: bench/callgrind.sh BENCH_BINARY [bench arguments...]
#   OPS (default 300) decisions per side and benchmark; ONLY (default: every decision
#   benchmark) the --only list. ./run.sh bench-callgrind calls it with the reference
#   databases and the second schema.
set -euo pipefail
bin="$1"
shift
ops="${OPS:-300}"
only="${ONLY:-detail_,first_,bulk_action,index_page,global_search}"
out="$(mktemp -d "${TMPDIR:-/tmp}/tg-callgrind.XXXXXX")"
[ -n "${KEEP:-}" ] || trap 'rm -rf "$out"' EXIT
command -v valgrind >/dev/null || { echo "valgrind is not installed" >&2; exit 2; }
echo "==> valgrind --tool=callgrind, $ops ops per side and benchmark (takes a few minutes)"
valgrind --tool=callgrind --callgrind-out-file="$out/cg.out" --dump-instr=no \
  "$bin" "$@" --only "$only" --rounds 1 --ops "$ops" >"$out/bench.txt" 2>"$out/valgrind.txt" || {
  tail -20 "$out/valgrind.txt" >&2
  exit 1
}
grep -E "cache_size|: connection settings" "$out/bench.txt" | awk '!seen[$0]++'
# Each dump: "desc: Trigger: Client Request: bench=NAME side=SIDE ops=N" and "totals: IR".
for f in $(ls "$out"/cg.out* | sort -V); do # in the order the bench ran them
  awk '/^desc: Trigger: Client Request: bench=/ { label = $0 }
       /^(totals|summary): / && label != "" { print label, $2; exit }' "$f"
done | sed 's/^desc: Trigger: Client Request: //' | awk '
  { split($1, a, "="); split($2, s2, "="); split($3, c, "=");
    name = a[2]; side = s2[2]; ir[name, side] += $4; ops[name, side] += c[2];
    if (!(name in seen)) { seen[name] = ++n; order[n] = name } }
  END {
    printf "%-34s %14s %14s %9s\n", "operation (instructions/op)", "tenantguard", "baseline", "ratio"
    for (i = 1; i <= n; i++) {
      k = order[i]
      if (!ops[k, "tenantguard"] || !ops[k, "baseline"]) continue
      req = ops[k, "requests"] ? ir[k, "requests"] / ops[k, "requests"] : 0
      t = ir[k, "tenantguard"] / ops[k, "tenantguard"] - req
      bl = ir[k, "baseline"] / ops[k, "baseline"] - req
      printf "%-34s %14.0f %14.0f %8.3fx\n", k, t, bl, (bl > 0 ? t / bl : 0)
    }
  }'
