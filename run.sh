#!/usr/bin/env bash
# Set-up, build and run, on a fresh Debian 12 machine or an old one; every step idempotent.
#   ./run.sh demo    install what is missing, build, run the demo
#   ./run.sh demo postgres  the decision part of the demo on a throwaway PostgreSQL cluster
#   ./run.sh test    install what is missing, build, run every test (plain -Werror build,
#                    then again under AddressSanitizer and UndefinedBehaviorSanitizer)
#   ./run.sh build   install what is missing and build (preset "default")
#   ./run.sh bench   build with optimisations and run the benchmarks on a reference database
#                    of ROWS rows per table (default 100000) and the second schema of
#                    SECOND_ROWS invoices (default 1000000); extra arguments go to the bench
#   ./run.sh bench-callgrind  the same databases; instructions per decision of both sides
#                    and their ratio, from valgrind --tool=callgrind (OPS per side, default 300)
#   ./run.sh bench-pg  the PostgreSQL section: a throwaway cluster, the reference database of
#                    ROWS rows copied in, tenantguard vs a libpq baseline; extra args to the bench;
#                    then the backfill vs keyset batches by hand (bench/pg_backfill.sh)
#   ./run.sh fuzz [SECONDS]  build the libFuzzer targets (clang) and run each for SECONDS
#                    (default 60); `test` ends with a 20 s run of each (see fuzz/README.md)
set -euo pipefail
cd "$(dirname "$0")"

PACKAGES="build-essential cmake pkg-config liblua5.4-dev lua5.4 lua-unit libsqlite3-dev sqlite3 libpq-dev"
FUZZ_PACKAGES="clang libclang-rt-14-dev"   # libFuzzer: only `test` and `fuzz` need them
# only `test`: the rock's install test, zsh completion, the man page check, xmllint on JUnit,
# the PostgreSQL server the ctest fixture runs a throwaway cluster of (scripts/pg_cluster.sh)
TEST_PACKAGES="$FUZZ_PACKAGES luarocks zsh groff-base man-db libxml2-utils postgresql-15"

ensure_packages() { # [extra packages...]
  local missing=()
  for p in $PACKAGES "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if ((${#missing[@]})); then
    echo "==> installing: ${missing[*]}"
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y --no-install-recommends "${missing[@]}"
  fi
}

build() { # preset
  cmake --preset "$1" >/dev/null
  cmake --build --preset "$1" -j "$(nproc)"
}

# Replays the committed fuzz inputs, then runs each fuzz target for $1 seconds. New corpus
# entries go to build-fuzz/corpus/, crashes to build-fuzz/artifacts/ (both outside git).
fuzz() { # seconds
  build fuzz
  ctest --preset fuzz
  mkdir -p build-fuzz/artifacts
  local t dict
  for t in rules request; do
    mkdir -p "build-fuzz/corpus/$t"
    dict=()
    [ -f "fuzz/$t.dict" ] && dict=("-dict=fuzz/$t.dict")
    echo "==> fuzz_$t for $1 s"
    ./build-fuzz/fuzz/fuzz_$t -max_total_time="$1" -timeout=10 -rss_limit_mb=2048 \
      -print_final_stats=1 -artifact_prefix="build-fuzz/artifacts/$t-" "${dict[@]}" \
      "build-fuzz/corpus/$t" "fuzz/corpus/$t" "fuzz/regressions/$t"
  done
}

case "${1:-}" in
  demo)
    if [ "${2:-}" = postgres ]; then
      # the decision part of the story on a throwaway PostgreSQL cluster
      ensure_packages postgresql-15
      build default
      exec scripts/demo_pg.sh ./build/tenantguard demo-pg
    fi
    ensure_packages
    build default
    exec ./build/tenantguard demo --dir demo
    ;;
  test)
    ensure_packages $TEST_PACKAGES
    build ci
    ctest --preset ci
    build asan
    ctest --preset asan
    fuzz 20
    ;;
  build)
    ensure_packages
    build default
    ;;
  fuzz)
    ensure_packages $FUZZ_PACKAGES
    fuzz "${2:-60}"
    ;;
  bench|bench-callgrind)
    cmd="$1"
    shift
    if [ "$cmd" = bench-callgrind ]; then ensure_packages valgrind; else ensure_packages; fi
    build bench
    rows="${ROWS:-100000}"
    second_rows="${SECOND_ROWS:-1000000}"
    db="build-bench/reference-$rows.db"
    small="build-bench/reference-$((rows / 4)).db"   # for the memory comparison
    text="build-bench/reference-text-$rows.db"       # the same app keyed by UUID text
    second="build-bench/second-$second_rows.db"       # bench/second_schema.c, built by the bench
    [ -f "$db" ] || ./build-bench/tenantguard refdb "$db" --rows "$rows"
    [ -f "$small" ] || ./build-bench/tenantguard refdb "$small" --rows "$((rows / 4))"
    [ -f "$text" ] || ./build-bench/tenantguard refdb "$text" --rows "$rows" --keys text
    args=(--db "$db" --rules rules --text-db "$text" --second-db "$second"
          --second-rules bench/second/rules --second-rows "$second_rows")
    ./build-bench/bench/tenantguard_bench "${args[@]}" --prepare-only
    if [ "$cmd" = bench-callgrind ]; then
      exec bench/callgrind.sh ./build-bench/bench/tenantguard_bench "${args[@]}" "$@"
    fi
    exec ./build-bench/bench/tenantguard_bench "${args[@]}" --small-db "$small" \
      --workdir build-bench --json "build-bench/bench-$rows.jsonl" "$@"
    ;;
  bench-pg)
    shift
    ensure_packages postgresql-15
    build bench
    rows="${ROWS:-100000}"
    db="build-bench/reference-$rows.db"
    [ -f "$db" ] || ./build-bench/tenantguard refdb "$db" --rows "$rows"
    pg_env=$(scripts/pg_cluster.sh start)
    eval "$pg_env"
    trap 'scripts/pg_cluster.sh stop "$TG_PG_CLUSTER_DIR"' EXIT   # also on failure
    ./build-bench/tenantguard pg-load --from "$db" --to "$TG_PG_OWNER_URI" --grant-to tg_app
    psql -X -q -d "$TG_PG_ADMIN_URI" -c ANALYZE   # planner statistics, as a live database has
    ./build-bench/bench/tenantguard_bench --pg-uri "$TG_PG_URI" --rules rules --ops 5000 \
      --json "build-bench/bench-pg-$rows.jsonl" "$@"
    sh bench/pg_backfill.sh "$db" ./build-bench/tenantguard   # the backfill, by hand too
    ;;
  *)
    sed -n '2,16p' "$0"
    exit 2
    ;;
esac
