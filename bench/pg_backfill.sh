#!/bin/sh
# The PostgreSQL backfill against keyset batches written by hand, rows per second.
#
#   bench/pg_backfill.sh REFERENCE.db [TOOL]
#
# Needs TG_PG_OWNER_URI (./run.sh bench-pg starts a throwaway cluster and calls this). The
# reference database is loaded twice, into schemas tgbench_tg and tgbench_hand, each with
# workspace_id (NULL) added to the twelve tenant-owned tables, then bound:
#   tenantguard  `tenantguard backfill` (queue) then one `tenantguard worker`: adaptive batches
#                (50 ms target), each one transaction with its checkpoint, its run counters, its
#                batch row and the unbound-row lists; and the same with two workers at once
#   by hand      a DO block per table, the loop a careful DBA writes: the next keyset bound,
#                one UPDATE ... FROM tenants over (last, hi], COMMIT; BATCH rows a batch
#                (default 5000), no bookkeeping, no round trips at all (server-side loop)
# Rows per second = the rows of the twelve tables and the audit log / wall-clock seconds.
set -eu
db=${1:?usage: pg_backfill.sh REFERENCE.db [TOOL]}
tool=${2:-./build-bench/tenantguard}
batch=${BATCH:-5000}
: "${TG_PG_OWNER_URI:?TG_PG_OWNER_URI is not set (./run.sh bench-pg sets it)}"
TABLES="policies policy_versions backup_schedules backup_sets restore_runs findings
inventory_items entra_groups backup_items inventory_links entra_role_definitions
tenant_permissions"

uri_in() { # schema
  case "$TG_PG_OWNER_URI" in
  *\?*) echo "$TG_PG_OWNER_URI&options=-csearch_path%3D$1" ;;
  *) echo "$TG_PG_OWNER_URI?options=-csearch_path%3D$1" ;;
  esac
}
q() { PGOPTIONS=-cclient_min_messages=error psql -X -q -A -t -v ON_ERROR_STOP=1 -d "$1" -c "$2"; }
now() { date +%s.%N; }

prepare() { # schema
  q "$TG_PG_OWNER_URI" "SET client_min_messages = warning; DROP SCHEMA IF EXISTS $1 CASCADE;
    CREATE SCHEMA $1" >/dev/null
  "$tool" pg-load --from "$db" --to "$(uri_in "$1")" >/dev/null
  for t in $TABLES; do
    q "$(uri_in "$1")" "ALTER TABLE $t ADD COLUMN workspace_id bigint" >/dev/null
  done
  q "$(uri_in "$1")" "ANALYZE tenants, audit_logs, $(echo $TABLES | sed 's/ /, /g')" >/dev/null
}

rows_of() { # schema
  n=0
  for t in $TABLES audit_logs; do
    n=$((n + $(q "$(uri_in "$1")" "SELECT count(*) FROM $t")))
  done
  echo "$n"
}

check_bound() { # schema
  for t in $TABLES; do
    bad=$(q "$(uri_in "$1")" "SELECT count(*) FROM $t r JOIN tenants x ON x.id = r.tenant_id
      WHERE r.workspace_id IS DISTINCT FROM x.workspace_id")
    [ "$bad" = 0 ] || { echo "pg_backfill.sh: $1.$t: $bad rows not bound" >&2; exit 1; }
  done
}

report() { # label rows seconds
  awk -v l="$1" -v r="$2" -v s="$3" \
    'BEGIN { printf "  %-44s %9d rows %7.2f s %10.0f rows/s\n", l, r, s, r / s }'
}

echo "==> PostgreSQL backfill: $(basename "$db"), hand-written batches of $batch rows"

# tenantguard, one worker
prepare tgbench_tg
uri=$(uri_in tgbench_tg)
rows=$(rows_of tgbench_tg)
"$tool" backfill --db "$uri" >/dev/null
t0=$(now)
"$tool" worker --db "$uri" --quiet >/dev/null
t1=$(now)
check_bound tgbench_tg
report "tenantguard worker (1 process)" "$rows" "$(echo "$t1 - $t0" | bc)"
q "$uri" "SELECT '    ' || batches || ' batches, longest ' || round(longest_batch_ms::numeric, 1)
  || ' ms, ' || round(seconds::numeric, 2) || ' s inside batches' FROM tenantguard_runs"

# tenantguard, two workers at once
prepare tgbench_tg
rows=$(rows_of tgbench_tg)
"$tool" backfill --db "$uri" >/dev/null
t0=$(now)
"$tool" worker --db "$uri" --quiet >/dev/null &
w1=$!
"$tool" worker --db "$uri" --quiet >/dev/null &
w2=$!
wait $w1 $w2
t1=$(now)
check_bound tgbench_tg
report "tenantguard workers (2 processes)" "$rows" "$(echo "$t1 - $t0" | bc)"

# by hand
prepare tgbench_hand
uri=$(uri_in tgbench_hand)
rows=$(rows_of tgbench_hand)
t0=$(now)
for t in $TABLES audit_logs; do
  q "$uri" "DO \$\$
DECLARE lo bigint := -9223372036854775808; hi bigint;
BEGIN
  LOOP
    SELECT max(id) INTO hi FROM (SELECT id FROM $t WHERE id > lo ORDER BY id LIMIT $batch) b;
    EXIT WHEN hi IS NULL;
    UPDATE $t r SET workspace_id = x.workspace_id FROM tenants x
      WHERE x.id = r.tenant_id AND r.id > lo AND r.id <= hi
        AND r.workspace_id IS DISTINCT FROM x.workspace_id;
    COMMIT;
    lo := hi;
  END LOOP;
END \$\$" >/dev/null
done
t1=$(now)
check_bound tgbench_hand
report "by hand (DO loop, $batch-row keyset batches)" "$rows" "$(echo "$t1 - $t0" | bc)"
q "$TG_PG_OWNER_URI" "SET client_min_messages = warning; DROP SCHEMA tgbench_tg CASCADE;
  DROP SCHEMA tgbench_hand CASCADE" >/dev/null
