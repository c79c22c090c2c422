#!/bin/sh
# The ctest fixture of the PostgreSQL tests: pg_fixture.sh start|stop ENVFILE
#   start  starts a throwaway cluster (scripts/pg_cluster.sh) and writes its exports to
#          ENVFILE, which tests/pg_env.sh reads; with TG_PG_URI already set, or without the
#          server's binaries, starts nothing (the tests then use TG_PG_URI, or skip)
#   stop   stops that cluster and removes it and ENVFILE
set -eu
cmd=$1
envfile=$2
cluster="$(cd "$(dirname "$0")/.." && pwd)/scripts/pg_cluster.sh"

stop() {
  if [ -f "$envfile" ]; then
    dir=$(sed -n "s/^export TG_PG_CLUSTER_DIR='\(.*\)'$/\1/p" "$envfile")
    [ -z "$dir" ] || sh "$cluster" stop "$dir"
    rm -f "$envfile"
  fi
}

case "$cmd" in
start)
  stop # a cluster left by an interrupted run
  if [ -n "${TG_PG_URI:-}" ]; then
    echo "TG_PG_URI is set: the PostgreSQL tests use that server; no cluster started"
    exit 0
  fi
  rc=0
  sh "$cluster" start >"$envfile.tmp" || rc=$?
  if [ "$rc" -eq 77 ]; then
    rm -f "$envfile.tmp"
    echo "no PostgreSQL server binaries (Debian: postgresql-15): the PostgreSQL tests will be skipped"
    exit 0
  fi
  [ "$rc" -eq 0 ] || { rm -f "$envfile.tmp"; exit "$rc"; }
  mv "$envfile.tmp" "$envfile"
  sed -n "s/^export TG_PG_CLUSTER_DIR='\(.*\)'$/started a throwaway PostgreSQL cluster in \1/p" "$envfile"
  ;;
stop)
  stop
  ;;
*)
  echo "usage: pg_fixture.sh start|stop ENVFILE" >&2
  exit 2
  ;;
esac
