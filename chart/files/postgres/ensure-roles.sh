#!/usr/bin/env bash
# Makes the database, the owner role and the read-only role exist with the passwords in the
# environment; safe to run any number of times (the seed Job runs it on every install and
# upgrade, so a changed Secret takes effect). Runs as the PostgreSQL superuser through psql.
#
# Environment: PGHOST, PGPORT, PGUSER (superuser), PGPASSWORD, DATABASE, OWNER_ROLE,
# OWNER_PASSWORD, READER_ROLE, READER_PASSWORD, MONITOR_ROLE, MONITOR_PASSWORD,
# WAIT_SECONDS (default 300).
set -euo pipefail

for name in PGHOST PGUSER PGPASSWORD DATABASE OWNER_ROLE OWNER_PASSWORD READER_ROLE READER_PASSWORD MONITOR_ROLE MONITOR_PASSWORD; do
  if [ -z "${!name:-}" ]; then
    echo "ensure-roles: $name is required" >&2
    exit 2
  fi
done
wait_seconds="${WAIT_SECONDS:-300}"

echo "ensure-roles: waiting up to ${wait_seconds}s for PostgreSQL at ${PGHOST}:${PGPORT:-5432}"
deadline=$((SECONDS + wait_seconds))
until pg_isready -q -d postgres; do
  if [ "$SECONDS" -ge "$deadline" ]; then
    echo "ensure-roles: PostgreSQL at ${PGHOST}:${PGPORT:-5432} did not accept connections within ${wait_seconds}s" >&2
    exit 1
  fi
  sleep 2
done

# Values travel as psql variables and are quoted by format(%I, %L): nothing is spliced into SQL.
psql_as_superuser() {
  psql -X -q -v ON_ERROR_STOP=1 \
    -v owner="$OWNER_ROLE" -v owner_password="$OWNER_PASSWORD" \
    -v reader="$READER_ROLE" -v reader_password="$READER_PASSWORD" \
    -v monitor="$MONITOR_ROLE" -v monitor_password="$MONITOR_PASSWORD" \
    -v database="$DATABASE" "$@"
}

echo "ensure-roles: roles ${OWNER_ROLE} (owner), ${READER_ROLE} (read-only), ${MONITOR_ROLE} (monitoring)"
psql_as_superuser -d postgres <<'SQL'
SELECT format(CASE WHEN EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :'owner')
                   THEN 'ALTER ROLE %I LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD %L'
                   ELSE 'CREATE ROLE %I LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD %L' END,
              :'owner', :'owner_password') \gexec
SELECT format(CASE WHEN EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :'reader')
                   THEN 'ALTER ROLE %I LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD %L'
                   ELSE 'CREATE ROLE %I LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD %L' END,
              :'reader', :'reader_password') \gexec
SELECT format(CASE WHEN EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :'monitor')
                   THEN 'ALTER ROLE %I LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD %L'
                   ELSE 'CREATE ROLE %I LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD %L' END,
              :'monitor', :'monitor_password') \gexec
-- Statistics only (pg_stat_*, settings): the exporter's role reads no table.
SELECT format('GRANT pg_monitor TO %I', :'monitor') \gexec
-- The api's sessions start read-only; a second guard behind the grants, which are the real one
-- (a session may turn it off, and still may write nothing it was not granted).
SELECT format('ALTER ROLE %I SET default_transaction_read_only = on', :'reader') \gexec
SELECT format('CREATE DATABASE %I OWNER %I', :'database', :'owner')
WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = :'database') \gexec
SELECT format('ALTER DATABASE %I OWNER TO %I', :'database', :'owner') \gexec
-- No role but the superuser opens a session, or a temporary table, in the maintenance
-- databases (by default PUBLIC may); each role below gets CONNECT to the application's only.
REVOKE CONNECT, TEMPORARY ON DATABASE postgres FROM PUBLIC;
REVOKE CONNECT, TEMPORARY ON DATABASE template1 FROM PUBLIC;
SELECT format('REVOKE ALL ON DATABASE %I FROM PUBLIC', :'database') \gexec
SELECT format('GRANT CONNECT ON DATABASE %I TO %I, %I, %I', :'database', :'owner', :'reader', :'monitor') \gexec
SQL

# Large objects need no grant on anything: any role that may connect can create them, of any
# size, even in a read-only session (lo_from_bytea writes one there). The application uses
# none, so their writing functions are taken
# from PUBLIC, in the application's database and in template1 (databases created later, a
# restore's among them, copy its catalog).
revoke_large_objects="REVOKE EXECUTE ON FUNCTION lo_creat(integer), lo_create(oid),
  lo_from_bytea(oid, bytea), lo_import(text), lo_import(text, oid), lowrite(integer, bytea),
  lo_put(oid, bigint, bytea), lo_truncate(integer, integer), lo_truncate64(integer, bigint),
  lo_unlink(oid) FROM PUBLIC;"

echo "ensure-roles: schema public of ${DATABASE} belongs to ${OWNER_ROLE}"
psql_as_superuser -d "$DATABASE" <<'SQL'
SELECT format('ALTER SCHEMA public OWNER TO %I', :'owner') \gexec
REVOKE ALL ON SCHEMA public FROM PUBLIC;
SELECT format('GRANT USAGE ON SCHEMA public TO %I', :'reader') \gexec
SQL
echo "ensure-roles: no role but the superuser writes large objects in ${DATABASE} and template1"
psql_as_superuser -d "$DATABASE" -c "$revoke_large_objects"
psql_as_superuser -d template1 -c "$revoke_large_objects"
echo "ensure-roles: done"
