#!/bin/sh
# The story on PostgreSQL: a throwaway cluster (scripts/pg_cluster.sh, Unix socket only,
# removed at the end), the reference database copied into it, the same rules deciding there
# as the application's role (not a superuser, owns nothing), the online rollout and the
# backfill as the tables' owner, the matrix, row-level security with raw SQL, and what a
# Citus deployment would need (lint, plan, distributed mode).
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
rm -f "$dir/ref.db" "$dir/decisions.jsonl"
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

step "5. The rollout, online: as the tables' owner, short lock_timeout, retries"
own="$TG_PG_OWNER_URI"
run "$tool" backfill --db "$own" --dry-run
run "$tool" rollout add_columns --db "$own"
run "$tool" rollout enforce_writes --db "$own"
run "$tool" backfill --db "$own"
run "$tool" worker --db "$own" --quiet
run "$tool" validate --db "$own" || true
run "$tool" rollout quarantine_orphans --db "$own"
run "$tool" validate --db "$own"
run "$tool" rollout enforce_constraints --db "$own"
echo "the spec's validation SQL, run as written:"
psql -X -q -A -d "$own" -c "SELECT 'policies: ' || count(*) || ' rows without a workspace' FROM policies WHERE workspace_id IS NULL" \
  -c "SELECT 'rows whose workspace is not their tenant''s: ' || count(*) FROM policies p JOIN tenants t ON t.id = p.tenant_id WHERE p.workspace_id <> t.workspace_id"
echo "a raw write naming the wrong workspace, as the application's role:"
psql -X -q -d "$TG_PG_URI" -c "INSERT INTO policies (tenant_id, workspace_id, display_name, policy_type, created_at) VALUES (1, 2, 'x', 'y', 'now')" 2>&1 | head -1 || true

step "6. The guard-scenario matrix, on PostgreSQL"
if run "$tool" matrix --db "$TG_PG_URI" --mutate; then :; else
  echo "(the matrix on PostgreSQL reported findings above)"
fi

step "7. Row-level security from the rules, and raw SQL"
run "$tool" rollout enable_rls --db "$own"
echo "raw SQL as the application's role, no tenant set: nothing is visible"
psql -X -q -A -d "$TG_PG_URI" -c "SELECT count(*) AS policies_visible FROM policies"
echo "inside a transaction with the tenant set locally (what ctx:query does): only tenant 1"
psql -X -q -A -d "$TG_PG_URI" -c "BEGIN" \
  -c "SELECT set_config('tenantguard.tenant_id', '1', true)" \
  -c "SELECT count(*) AS rows, min(tenant_id) AS tenant_min, max(tenant_id) AS tenant_max FROM policies" \
  -c "COMMIT" | grep -v '^1$' || true
echo "... and inserting a row of tenant 2 from there is refused by the policy's WITH CHECK:"
psql -X -q -d "$TG_PG_URI" -c "BEGIN" -c "SELECT set_config('tenantguard.tenant_id', '1', true)" \
  -c "INSERT INTO policies (tenant_id, display_name, policy_type, created_at) VALUES (2, 'x', 'y', 'now')" \
  -c "COMMIT" 2>&1 | grep -i error | head -1 || true
run "$tool" lint --db "$TG_PG_URI"

step "8. Scaling out: what Citus would need, and distributed mode"
printf '$ %s\n' "$tool lint --target citus --db \$TG_PG_URI   (the last lines)"
"$tool" lint --target citus --db "$TG_PG_URI" | tail -4 || true
echo "the DDL it would run (the first lines; it runs nothing):"
"$tool" rollout --plan --target citus --db "$TG_PG_URI" | head -20
echo "distributed mode (automatic on Citus): the read by id carries tenant_id = \$n and goes"
echo "to one shard; tenant 2's Policy $id is then not read at all from tenant 1's route:"
run "$tool" resolve --db "$TG_PG_URI" --user 1 --workspace 1 --tenant 1 --family Policy \
  --path detail --id "$id" --distributed on --log "$dir/decisions.jsonl"

step "9. What the decision log saw"
run "$tool" log "$dir/decisions.jsonl"
echo
echo "done: the cluster is removed; the SQLite copy and the log stay in $dir/"
