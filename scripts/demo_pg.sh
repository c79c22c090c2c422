#!/bin/sh
# The decision part of the story on PostgreSQL: a throwaway cluster (scripts/pg_cluster.sh,
# Unix socket only, removed at the end), the reference database copied into it, and the
# same rules deciding there as the application's role (not a superuser, owns nothing).
#   usage: scripts/demo_pg.sh TOOL [DIR]     (./run.sh demo postgres calls it)
set -eu
tool="$1"
dir="${2:-demo-pg}"
here="$(cd "$(dirname "$0")" && pwd)"
mkdir -p "$dir"
cluster="$(mktemp -d "${TMPDIR:-/tmp}/tg-demo-pg.XXXXXX")"
rmdir "$cluster" # pg_cluster.sh makes it
trap '"$here/pg_cluster.sh" stop "$cluster" >/dev/null 2>&1 || true' EXIT INT TERM
eval "$("$here/pg_cluster.sh" start "$cluster")"

step() { printf '\n== %s %s\n' "$1" "$(printf '%*s' $((74 - ${#1})) '' | tr ' ' '=')"; }
run() { printf '$ %s\n' "$*" | sed "s#$TG_PG_URI#\$TG_PG_URI#g; s#$TG_PG_OWNER_URI#\$TG_PG_OWNER_URI#g"; "$@"; }

step "1. A throwaway PostgreSQL cluster"
echo "tg_app connects: LOGIN, not a superuser, no BYPASSRLS, owns nothing."
echo "TG_PG_URI=$TG_PG_URI"

step "2. The reference database, copied into PostgreSQL"
rm -f "$dir/ref.db"
run "$tool" refdb "$dir/ref.db" --rows 2000
run "$tool" pg-load --from "$dir/ref.db" --to "$TG_PG_OWNER_URI" --grant-to tg_app

step "3. The rules against the live PostgreSQL catalog"
run "$tool" lint --db "$TG_PG_URI"

step "4. Decisions: the same rules, the same answers as on SQLite"
for t in 1 2; do
  run "$tool" resolve --db "$TG_PG_URI" --user 1 --workspace 1 --tenant "$t" --family Policy \
    --path index --limit 3 --log "$dir/decisions.jsonl"
done
id=$("$tool" resolve --db "$TG_PG_URI" --user 1 --workspace 1 --tenant 2 --family Policy \
  --path index --limit 1 --json | sed -n 's/.*"records":\[{[^}]*"id":\([0-9]*\).*/\1/p')
echo "a record of tenant 2: Policy $id; asked for from tenant 1's route:"
run "$tool" resolve --db "$TG_PG_URI" --user 1 --workspace 1 --tenant 1 --family Policy \
  --path detail --id "$id" --log "$dir/decisions.jsonl"
run "$tool" explain --db "$TG_PG_URI" --user 1 --workspace 1 --tenant 1 --family Policy \
  --path detail --id "$id"
own=$("$tool" resolve --db "$TG_PG_URI" --user 1 --workspace 1 --tenant 1 --family Policy \
  --path index --limit 1 --json | sed -n 's/.*"records":\[{[^}]*"id":\([0-9]*\).*/\1/p')
echo "a read-only user of tenant 1 asks to delete its Policy $own (403: scope holds, the role"
echo "lacks policy.delete), then tenant 2's Policy $id (404: scope first, nothing leaks):"
run "$tool" resolve --db "$TG_PG_URI" --user 3 --workspace 1 --tenant 1 --family Policy \
  --path bulk_action --ids "$own" --log "$dir/decisions.jsonl" || true
run "$tool" resolve --db "$TG_PG_URI" --user 3 --workspace 1 --tenant 1 --family Policy \
  --path bulk_action --ids "$id" --log "$dir/decisions.jsonl" || true

step "5. The guard-scenario matrix, on PostgreSQL"
if run "$tool" matrix --db "$TG_PG_URI" --mutate; then :; else
  echo "(the matrix on PostgreSQL reported findings above)"
fi

step "6. What the decision log saw"
run "$tool" log "$dir/decisions.jsonl"
echo
echo "done: the cluster is removed; the SQLite copy and the log stay in $dir/"
