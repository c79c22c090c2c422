#!/bin/sh
# A throwaway PostgreSQL cluster for the tests and the demo: nothing of the machine's own
# PostgreSQL is used or changed.
#
#   pg_cluster.sh start [DIR]  initdb in DIR (default: a new temporary directory), start the
#                              server, create the roles and the database, print the exports
#   pg_cluster.sh env DIR      print the exports again
#   pg_cluster.sh stop DIR     stop the server (immediate) and remove DIR; safe to repeat
#   pg_cluster.sh standby PRIMARY_DIR [DIR]
#                              a streaming standby of the cluster in PRIMARY_DIR: a copy made
#                              with pg_basebackup -R in DIR (default: a new temporary directory),
#                              started, in recovery, on its own socket; prints its exports;
#                              `stop DIR` stops and removes it like a primary
#
# The exports, for `eval "$(scripts/pg_cluster.sh start)"`:
#   TG_PG_URI        tg_app: LOGIN, not a superuser, no BYPASSRLS, owns nothing (what the
#                    application connects as; the loader grants it what it needs)
#   TG_PG_OWNER_URI  tg_owner: owns the database tg_test and the tables loaded into it
#   TG_PG_ADMIN_URI  tg_admin, the cluster's superuser (tests use it to kill connections)
#   TG_PG_CLUSTER_DIR
# and for a standby:
#   TG_PG_STANDBY_URI        tg_app on the standby (read only, as any standby)
#   TG_PG_STANDBY_ADMIN_URI  tg_admin on the standby (tests pause and resume its replay)
#   TG_PG_STANDBY_DIR
#
# The server listens on a Unix socket in DIR only (listen_addresses = ''), so it takes no
# TCP port and needs no password (trust, on that socket only, for replication too; DIR is
# mode 0700). Run as
# root, the server runs as the system user tgpg (created when missing; `nobody` when it
# cannot be). Exit status 77: no PostgreSQL server binaries here (Debian: postgresql-15).
set -eu

die() {
  echo "pg_cluster.sh: $*" >&2
  exit 1
}

find_bin() {
  if [ -n "${PG_BIN:-}" ] && [ -x "$PG_BIN/initdb" ]; then
    echo "$PG_BIN"
    return
  fi
  for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -t/ -k4 -n -r); do
    if [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ]; then
      echo "$d"
      return
    fi
  done
  d=$(command -v initdb 2>/dev/null || true)
  [ -n "$d" ] && dirname "$d"
  return 0
}

# Runs a command as the cluster's user.
as_owner() {
  if [ -n "$RUN_AS" ]; then
    runuser -u "$RUN_AS" -- "$@"
  else
    "$@"
  fi
}

pick_user() {
  RUN_AS=""
  [ "$(id -u)" -eq 0 ] || return 0
  if id tgpg >/dev/null 2>&1 ||
    useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin \
      tgpg >/dev/null 2>&1; then
    RUN_AS=tgpg
  else
    RUN_AS=nobody
  fi
}

exports() { # dir
  dir=$1
  q="postgresql:///tg_test?host=$dir&port=5432"
  echo "export TG_PG_URI='$q&user=tg_app'"
  echo "export TG_PG_OWNER_URI='$q&user=tg_owner'"
  echo "export TG_PG_ADMIN_URI='$q&user=tg_admin'"
  echo "export TG_PG_CLUSTER_DIR='$dir'"
}

cmd=${1:-}
case "$cmd" in
start)
  bin=$(find_bin)
  if [ -z "$bin" ]; then
    echo "pg_cluster.sh: no PostgreSQL server binaries (initdb, pg_ctl); Debian: apt-get install postgresql-15" >&2
    exit 77
  fi
  pick_user
  if [ -n "${2:-}" ]; then
    dir=$2
    mkdir -p "$dir"
  else
    dir=$(mktemp -d "${TMPDIR:-/tmp}/tgpg.XXXXXX")
  fi
  dir=$(cd "$dir" && pwd)
  # the socket's path must fit in sun_path (107 bytes)
  [ ${#dir} -le 80 ] || die "$dir: too long a path for the server's Unix socket (at most 80 bytes)"
  if [ -f "$dir/data/postmaster.pid" ] && as_owner "$bin/pg_ctl" -D "$dir/data" status >/dev/null 2>&1; then
    exports "$dir" # already running
    exit 0
  fi
  chmod 700 "$dir"
  [ -z "$RUN_AS" ] || chown "$RUN_AS" "$dir"
  if [ ! -f "$dir/data/PG_VERSION" ]; then
    rm -rf "$dir/data"
    as_owner "$bin/initdb" -D "$dir/data" -U tg_admin -A trust -E UTF8 --locale=C.UTF-8 \
      >"$dir/initdb.log" 2>&1 || {
      cat "$dir/initdb.log" >&2
      die "initdb failed in $dir (as ${RUN_AS:-$(id -un)}: can it reach that directory?)"
    }
    cat >>"$dir/data/postgresql.conf" <<EOF
# pg_cluster.sh: a throwaway test cluster
listen_addresses = ''
unix_socket_directories = '$dir'
port = 5432
fsync = off
synchronous_commit = off
full_page_writes = off
max_connections = 50
shared_buffers = 32MB
EOF
    # only the Unix socket, trust; nothing else (replication: for `standby`)
    printf 'local all all trust\nlocal replication all trust\n' >"$dir/data/pg_hba.conf"
  fi
  as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 start >/dev/null 2>&1 || {
    cat "$dir/server.log" >&2 2>/dev/null || true
    die "the server did not start (log above)"
  }
  psql=$bin/psql
  [ -x "$psql" ] || psql=psql
  "$psql" -X -q -v ON_ERROR_STOP=1 -h "$dir" -p 5432 -U tg_admin -d postgres >/dev/null <<'EOF'
SELECT 'CREATE ROLE tg_owner LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS'
WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'tg_owner') \gexec
SELECT 'CREATE ROLE tg_app LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS'
WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'tg_app') \gexec
SELECT 'CREATE DATABASE tg_test OWNER tg_owner'
WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = 'tg_test') \gexec
EOF
  exports "$dir" >"$dir/env"
  cat "$dir/env"
  ;;
standby)
  pdir=${2:-}
  [ -n "$pdir" ] && [ -f "$pdir/env" ] && [ -f "$pdir/data/PG_VERSION" ] ||
    die "usage: pg_cluster.sh standby PRIMARY_DIR [DIR] (PRIMARY_DIR: a cluster of pg_cluster.sh start)"
  pdir=$(cd "$pdir" && pwd)
  bin=$(find_bin)
  if [ -z "$bin" ] || [ ! -x "$bin/pg_basebackup" ]; then
    echo "pg_cluster.sh: no PostgreSQL server binaries (pg_basebackup, pg_ctl); Debian: apt-get install postgresql-15" >&2
    exit 77
  fi
  pick_user
  as_owner "$bin/pg_ctl" -D "$pdir/data" status >/dev/null 2>&1 || die "the primary in $pdir is not running"
  if [ -n "${3:-}" ]; then
    dir=$3
    mkdir -p "$dir"
  else
    dir=$(mktemp -d "${TMPDIR:-/tmp}/tgpgs.XXXXXX")
  fi
  dir=$(cd "$dir" && pwd)
  [ ${#dir} -le 80 ] || die "$dir: too long a path for the server's Unix socket (at most 80 bytes)"
  [ ! -e "$dir/data" ] || die "$dir/data exists already: give a new directory"
  chmod 700 "$dir"
  [ -z "$RUN_AS" ] || chown "$RUN_AS" "$dir"
  # a primary started before `local replication` was written: add it (still the socket only)
  if ! grep -q '^local replication all trust$' "$pdir/data/pg_hba.conf"; then
    printf 'local replication all trust\n' >>"$pdir/data/pg_hba.conf"
    as_owner "$bin/pg_ctl" -D "$pdir/data" reload >/dev/null 2>&1 || die "could not reload $pdir"
  fi
  # -R: standby.signal and primary_conninfo (the primary's socket); -c fast: no waiting for a
  # checkpoint; -X stream: the WAL written meanwhile comes along
  as_owner "$bin/pg_basebackup" -d "host=$pdir port=5432 user=tg_admin application_name=tg_standby" \
    -D "$dir/data" -R -X stream -c fast >"$dir/basebackup.log" 2>&1 || {
    cat "$dir/basebackup.log" >&2
    die "pg_basebackup from $pdir failed"
  }
  cat >>"$dir/data/postgresql.conf" <<EOF
# pg_cluster.sh standby: a streaming standby of $pdir, on its own socket
unix_socket_directories = '$dir'
hot_standby = on
EOF
  as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 start >/dev/null 2>&1 || {
    cat "$dir/server.log" >&2 2>/dev/null || true
    die "the standby did not start (log above)"
  }
  psql=$bin/psql
  [ -x "$psql" ] || psql=psql
  rec=$("$psql" -X -At -h "$dir" -p 5432 -U tg_admin -d postgres -c 'SELECT pg_is_in_recovery()' 2>&1) ||
    die "the standby does not accept connections: $rec"
  [ "$rec" = t ] || die "the server in $dir is not in recovery: not a standby"
  q="postgresql:///tg_test?host=$dir&port=5432"
  {
    echo "export TG_PG_STANDBY_URI='$q&user=tg_app'"
    echo "export TG_PG_STANDBY_ADMIN_URI='$q&user=tg_admin'"
    echo "export TG_PG_STANDBY_DIR='$dir'"
  } >"$dir/env"
  cat "$dir/env"
  ;;
env)
  [ -n "${2:-}" ] && [ -f "$2/env" ] || die "no cluster in '${2:-}'"
  cat "$2/env"
  ;;
stop)
  dir=${2:-}
  [ -n "$dir" ] || die "usage: pg_cluster.sh stop DIR"
  [ -d "$dir" ] || exit 0
  # never remove a directory this script did not make
  [ -f "$dir/data/PG_VERSION" ] || [ -f "$dir/env" ] || [ -f "$dir/initdb.log" ] ||
    die "$dir does not hold a pg_cluster.sh cluster: left alone"
  if [ -f "$dir/data/postmaster.pid" ]; then
    bin=$(find_bin)
    pick_user
    [ -z "$bin" ] || as_owner "$bin/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null 2>&1 || true
  fi
  rm -rf "$dir"
  ;;
*)
  echo "usage: pg_cluster.sh start [DIR] | standby PRIMARY_DIR [DIR] | env DIR | stop DIR" >&2
  exit 2
  ;;
esac
