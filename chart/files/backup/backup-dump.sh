#!/usr/bin/env bash
# Full logical backup of one database: pg_dump in custom format, compressed, written under a
# temporary name and renamed into place only once it is complete, with a sha256sum-format
# checksum file next to it; then keeps the newest KEEP_DUMPS dumps of that database.
#
#   <BACKUP_DIR>/dumps/<DATABASE>-<YYYYmmddTHHMMSSZ>.dump
#   <BACKUP_DIR>/dumps/<DATABASE>-<YYYYmmddTHHMMSSZ>.dump.sha256
#
# Environment: PGHOST, PGPORT (default 5432), PGUSER, PGPASSWORD (or PGPASSFILE), DATABASE,
# BACKUP_DIR (must exist: a missing volume is an error, not a directory to create),
# KEEP_DUMPS (default 7), WAIT_SECONDS (default 60, how long to wait for the server).
# Exit status: 0 done, 1 failed (nothing partial left behind), 2 bad configuration, 143 (130)
# stopped by TERM (INT): the running step is stopped and nothing partial left behind.
set -euo pipefail

log() { echo "backup-dump: $*"; }
die() {
  echo "backup-dump: ERROR: $*" >&2
  exit 1
}
config_error() {
  echo "backup-dump: $*" >&2
  exit 2
}

for name in PGHOST PGUSER DATABASE BACKUP_DIR; do
  [ -n "${!name:-}" ] || config_error "$name is required"
done
[ -n "${PGPASSWORD:-}" ] || [ -n "${PGPASSFILE:-}" ] || config_error "PGPASSWORD is required (or PGPASSFILE)"
keep="${KEEP_DUMPS:-7}"
[[ "$keep" =~ ^[1-9][0-9]*$ ]] || config_error "KEEP_DUMPS must be a whole number of at least 1, not '$keep'"
wait_seconds="${WAIT_SECONDS:-60}"
[[ "$wait_seconds" =~ ^[0-9]+$ ]] || config_error "WAIT_SECONDS must be a whole number, not '$wait_seconds'"
[[ "$DATABASE" =~ ^[A-Za-z0-9_][A-Za-z0-9_.-]*$ ]] ||
  config_error "DATABASE '$DATABASE' cannot be part of a file name (letters, digits, _ . - only)"
[ -d "$BACKUP_DIR" ] || die "BACKUP_DIR $BACKUP_DIR does not exist (is the backup volume mounted?)"

dumps="$BACKUP_DIR/dumps"
mkdir -p "$dumps" || die "cannot create $dumps"
[ -w "$dumps" ] || die "$dumps is not writable by uid $(id -u)"

now_ms() { echo $(($(date +%s%N) / 1000000)); }
started_ms=$(now_ms)

# A name per second; two runs within one second wait for the next one instead of colliding.
stamp=$(date -u +%Y%m%dT%H%M%SZ)
while [ -e "$dumps/$DATABASE-$stamp.dump" ] || [ -e "$dumps/.$DATABASE-$stamp.dump.partial" ]; do
  sleep 1
  stamp=$(date -u +%Y%m%dT%H%M%SZ)
done
name="$DATABASE-$stamp.dump"
final="$dumps/$name"
partial="$dumps/.$name.partial"
partial_sum="$dumps/.$name.sha256.partial"

# Whatever happens before the final rename, no partial file stays behind.
committed=false
cleanup() {
  local status=$?
  rm -f "$partial" "$partial_sum"
  if [ "$committed" != true ]; then
    rm -f "$final.sha256"
    [ "$status" -ne 0 ] || status=1
    echo "backup-dump: FAILED after $(($(now_ms) - started_ms)) ms; no dump was written" >&2
  fi
  exit "$status"
}
trap cleanup EXIT
# shellcheck source-path=SCRIPTDIR source=signals.sh
source "$(dirname "${BASH_SOURCE[0]}")/signals.sh"

log "waiting up to ${wait_seconds}s for PostgreSQL at ${PGHOST}:${PGPORT:-5432}"
deadline=$((SECONDS + wait_seconds))
until pg_isready -q -d "$DATABASE"; do
  [ "$SECONDS" -lt "$deadline" ] || die "PostgreSQL at ${PGHOST}:${PGPORT:-5432} did not accept connections within ${wait_seconds}s"
  sleep 2
done

log "dumping database $DATABASE from ${PGHOST}:${PGPORT:-5432} as $PGUSER to $final"
# --create records the database's owner and settings, so a restore can recreate it as it was.
run_step pg_dump --format=custom --compress=6 --create --dbname="$DATABASE" --file="$partial" ||
  die "pg_dump of $DATABASE failed (see its message above)"
dumped_ms=$(now_ms)
log "pg_dump finished in $((dumped_ms - started_ms)) ms; checking the archive's table of contents"
entries=$(pg_restore --list "$partial" | grep -c -v '^;' || true)
[ "$entries" -gt 0 ] || die "the new dump has an empty or unreadable table of contents"

sync "$partial"
sum=$(sha256sum "$partial" | cut -d' ' -f1)
printf '%s  %s\n' "$sum" "$name" >"$partial_sum"
sync "$partial_sum"
# The checksum goes first, the dump last: a dump under its final name always has its checksum.
mv -f "$partial_sum" "$final.sha256"
mv -f "$partial" "$final"
committed=true
sync "$dumps"

bytes=$(stat -c %s "$final")
log "wrote $final: $bytes bytes ($(numfmt --to=iec "$bytes")), $entries archive entries, sha256 $sum"

# Retention: this database's dumps only (exact name pattern), newest first by their timestamp.
pattern="$DATABASE-[0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9]T[0-9][0-9][0-9][0-9][0-9][0-9]Z.dump"
mapfile -t all < <(find "$dumps" -maxdepth 1 -type f -name "$pattern" -printf '%f\n' | sort -r)
deleted=0
for old in "${all[@]:keep}"; do
  rm -f "$dumps/$old" "$dumps/$old.sha256"
  log "retention: deleted $old and its checksum"
  deleted=$((deleted + 1))
done
# Leftovers of runs that were killed outright (SIGKILL skips the trap) after a day.
find "$dumps" -maxdepth 1 -name ".$DATABASE-*.partial" -mmin +1440 -delete
kept=$((${#all[@]} - deleted))
log "retention: kept $kept of at most $keep dumps of $DATABASE, deleted $deleted"
log "done in $(($(now_ms) - started_ms)) ms"
