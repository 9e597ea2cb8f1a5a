#!/usr/bin/env bash
# Entry point of the test cluster's stand-in for the official postgres image: the parts of its
# contract the chart relies on, written for this project (e2e/README.md, "Images").
#   - arguments that start with "-" are options of postgres: "postgres" is put in front;
#   - on an empty PGDATA, initdb as POSTGRES_USER (default postgres) with POSTGRES_PASSWORD and
#     POSTGRES_INITDB_ARGS, then POSTGRES_DB created if set and not "postgres";
#   - then exec, so the server is PID 1 and gets the pod's SIGTERM (fast shutdown on SIGINT).
# Anything else (sh, bash, a script) runs as given, with the PostgreSQL 15 binaries on PATH.
set -euo pipefail

if [ "$#" -eq 0 ] || [ "${1:0:1}" = "-" ]; then
  set -- postgres "$@"
fi

if [ "$1" = postgres ]; then
  : "${PGDATA:?PGDATA is required}"
  mkdir -p "$PGDATA"
  chmod 700 "$PGDATA" 2>/dev/null || true
  if [ ! -s "$PGDATA/PG_VERSION" ]; then
    if [ -z "${POSTGRES_PASSWORD:-}" ]; then
      echo "docker-entrypoint: $PGDATA holds no database and POSTGRES_PASSWORD is empty: set it to initialise one" >&2
      exit 1
    fi
    password_file=$(mktemp)
    trap 'rm -f "$password_file"' EXIT
    printf '%s\n' "$POSTGRES_PASSWORD" >"$password_file"
    echo "docker-entrypoint: initialising $PGDATA"
    # POSTGRES_INITDB_ARGS is a list of options, split on spaces as the official image does.
    # shellcheck disable=SC2086
    initdb --username="${POSTGRES_USER:-postgres}" --pwfile="$password_file" ${POSTGRES_INITDB_ARGS:-}
    rm -f "$password_file"
    trap - EXIT
    if [ -n "${POSTGRES_DB:-}" ] && [ "$POSTGRES_DB" != postgres ]; then
      echo "CREATE DATABASE \"$POSTGRES_DB\"" | postgres --single -D "$PGDATA" postgres >/dev/null
    fi
    echo "docker-entrypoint: initialised; starting PostgreSQL"
  fi
fi

exec "$@"
