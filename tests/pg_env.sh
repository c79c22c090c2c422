#!/bin/sh
# Runs a PostgreSQL test: pg_env.sh ENVFILE COMMAND [ARGS...]
# TG_PG_URI (and TG_PG_OWNER_URI, TG_PG_ADMIN_URI) come from the environment when set (a
# server of your own), else from ENVFILE, written by the ctest fixture that started a
# throwaway cluster (tests/pg_fixture.sh). With neither, the test is skipped, visibly:
# exit 77 is ctest's SKIP_RETURN_CODE for these tests.
envfile=$1
shift
if [ -z "${TG_PG_URI:-}" ] && [ -f "$envfile" ]; then
  . "$envfile"
fi
if [ -z "${TG_PG_URI:-}" ]; then
  echo "SKIPPED: no PostgreSQL (TG_PG_URI unset)"
  exit 77
fi
exec "$@"
