#!/usr/bin/env bash
# Restores a dump written by backup-dump.sh into a database, after proving the dump is intact.
#
#   restore-dump.sh <dump file> [target database]      (target defaults to DATABASE)
#
# Before anything touches the server: the dump's SHA256 must match its .sha256 file, its table
# of contents must list (pg_restore --list), and every data block must read and decompress
# (pg_restore to /dev/null). Any failure ends the script with status 1 and the target as it was.
# Then:
#   - target missing: it is created (owner DATABASE_OWNER, else the owner recorded in the
#     dump when that role exists and NO_OWNER is not true, else the connecting user) and the
#     dump restored into it;
#   - target exists: pg_restore --clean --if-exists replaces every object the dump contains
#     (objects only in the target stay).
# Either way in one transaction (--single-transaction): it all happens or none of it.
# Roles are not in a dump; they must exist (the seed Job's ensure-roles.sh creates them), or
# set NO_OWNER=true to give every object to the connecting user and restore no grants
# (--no-owner --no-privileges), e.g. on a server without the chart's roles. Database-level
# grants are not restored into a new database either: run the seed Job afterwards.
#
# Environment: PGHOST, PGPORT (default 5432), PGUSER (superuser or the database owner with
# CREATEDB), PGPASSWORD (or PGPASSFILE), DATABASE (when no target argument), DATABASE_OWNER,
# NO_OWNER (default false), MAINTENANCE_DATABASE (default postgres).
# Exit status: 0 restored, 1 refused or failed, 2 bad usage or configuration.
set -euo pipefail

log() { echo "restore-dump: $*"; }
die() {
  echo "restore-dump: ERROR: $*" >&2
  exit 1
}
usage_error() {
  echo "restore-dump: $*" >&2
  echo "usage: restore-dump.sh <dump file> [target database]" >&2
  exit 2
}

if [ "$#" -lt 1 ] || [ "$#" -gt 2 ]; then usage_error "expected a dump file and optionally a target database"; fi
dump="$1"
target="${2:-${DATABASE:-}}"
[ -n "$target" ] || usage_error "no target database: pass it as second argument or set DATABASE"
for name in PGHOST PGUSER; do
  [ -n "${!name:-}" ] || usage_error "$name is required"
done
[ -n "${PGPASSWORD:-}" ] || [ -n "${PGPASSFILE:-}" ] || usage_error "PGPASSWORD is required (or PGPASSFILE)"
no_owner="${NO_OWNER:-false}"
[[ "$no_owner" =~ ^(true|false)$ ]] || usage_error "NO_OWNER must be true or false, not '$no_owner'"
maintenance_db="${MAINTENANCE_DATABASE:-postgres}"

now_ms() { echo $(($(date +%s%N) / 1000000)); }
started_ms=$(now_ms)

# 1. The dump itself, before any connection to the server.
[ -f "$dump" ] || die "$dump does not exist or is not a file; nothing was changed"
[ -s "$dump" ] || die "$dump is empty; nothing was changed"
[ -f "$dump.sha256" ] || die "$dump.sha256 is missing, so the dump cannot be verified; refusing to restore. Nothing was changed"
expected=$(cut -d' ' -f1 "$dump.sha256" | head -n 1)
[[ "$expected" =~ ^[0-9a-f]{64}$ ]] || die "$dump.sha256 holds no SHA256 checksum; refusing to restore. Nothing was changed"
log "verifying $dump ($(stat -c %s "$dump") bytes) against $dump.sha256"
actual=$(sha256sum "$dump" | cut -d' ' -f1)
if [ "$actual" != "$expected" ]; then
  die "CHECKSUM MISMATCH for $dump: expected sha256 $expected, the file has $actual. The dump is corrupt or truncated; refusing to restore it. Nothing was changed; pick another dump"
fi
log "checksum ok (sha256 $actual)"
# --create lists the database entry too, with the owner the database had when it was dumped.
toc=$(pg_restore --create --list "$dump" 2>&1) ||
  die "pg_restore cannot read the table of contents of $dump: $toc. The dump is corrupt; refusing to restore it. Nothing was changed"
entries=$(grep -c -v '^;' <<<"$toc" || true)
[ "$entries" -gt 0 ] || die "the table of contents of $dump is empty; refusing to restore it. Nothing was changed"
read_errors=$(pg_restore --file=/dev/null "$dump" 2>&1) ||
  die "reading the data of $dump failed: $read_errors. The dump is corrupt; refusing to restore it. Nothing was changed"
log "structure ok: $entries archive entries, all data blocks read back"

# 2. The server.
sql() { psql -X -A -t -q -v ON_ERROR_STOP=1 "$@"; }
exists=$(sql -d "$maintenance_db" -v name="$target" <<<"SELECT count(*) FROM pg_database WHERE datname = :'name'") ||
  die "cannot connect to ${PGHOST}:${PGPORT:-5432}/$maintenance_db as $PGUSER"

created=false
if [ "$exists" = 0 ]; then
  owner="${DATABASE_OWNER:-}"
  if [ -z "$owner" ] && [ "$no_owner" = true ]; then
    owner="$PGUSER"
  elif [ -z "$owner" ]; then
    recorded=$(awk '$4 == "DATABASE" && $5 == "-" { print $NF; exit }' <<<"$toc")
    if [ -n "$recorded" ] && [ "$(sql -d "$maintenance_db" -v role="$recorded" <<<"SELECT count(*) FROM pg_roles WHERE rolname = :'role'")" = 1 ]; then
      owner="$recorded"
    else
      owner="$PGUSER"
      [ -z "$recorded" ] || log "the dump's database owner $recorded does not exist here; the new database belongs to $PGUSER"
    fi
  fi
  log "creating database $target owned by $owner"
  sql -d "$maintenance_db" -v name="$target" -v owner="$owner" <<<"SELECT format('CREATE DATABASE %I OWNER %I', :'name', :'owner') \\gexec" ||
    die "creating database $target failed"
  created=true
  mode="into the new database $target"
  clean=()
else
  mode="into the existing database $target, replacing the objects the dump contains (--clean --if-exists)"
  clean=(--clean --if-exists)
fi

drop_created() {
  local status=$?
  if [ "$status" -ne 0 ] && [ "$created" = true ]; then
    echo "restore-dump: dropping the database $target this run created, since the restore failed" >&2
    sql -d "$maintenance_db" -v name="$target" <<<"SELECT format('DROP DATABASE %I', :'name') \\gexec" || true
  fi
  exit "$status"
}
trap drop_created EXIT

owner_options=()
[ "$no_owner" != true ] || owner_options=(--no-owner --no-privileges)
log "restoring $mode in one transaction"
restore_started_ms=$(now_ms)
pg_restore --dbname="$target" --single-transaction --exit-on-error "${clean[@]}" "${owner_options[@]}" "$dump" ||
  die "pg_restore failed; the transaction was rolled back and $target is as it was before"
restore_ms=$(($(now_ms) - restore_started_ms))

tables=$(sql -d "$target" <<<"SELECT count(*) FROM pg_tables WHERE schemaname NOT IN ('pg_catalog', 'information_schema')")
log "restored $dump $mode: $tables tables, pg_restore took $restore_ms ms, $(($(now_ms) - started_ms)) ms in all"
log "next: check row counts, e.g. psql -d $target -c '\\dt+'; after restoring into a new database, run ensure-roles.sh (the seed Job) to reapply database grants and passwords"
