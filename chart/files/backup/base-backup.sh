#!/usr/bin/env bash
# Physical base backup for point-in-time recovery, then retention of base backups and WAL.
#
#   <BACKUP_DIR>/base/<YYYYmmddTHHMMSSZ>/base.tar.gz      the data directory (pg_basebackup tar)
#   <BACKUP_DIR>/base/<YYYYmmddTHHMMSSZ>/backup_manifest  SHA256 checksum of every file
#   <BACKUP_DIR>/base/<YYYYmmddTHHMMSSZ>/START_WAL        first WAL segment a restore needs
#   <BACKUP_DIR>/base/<YYYYmmddTHHMMSSZ>/backup_info      label, WAL range, start and end time
#
# The backup holds no WAL (--wal-method=none): a restore takes it from the WAL archive that
# archive-wal.sh fills. pg_basebackup returns only after the server has archived the last
# segment the backup needs, so a finished backup is restorable from the archive.
# PostgreSQL 15's pg_verifybackup cannot read tar backups, so the backup is verified by
# unpacking it into a scratch directory and running pg_verifybackup (--no-parse-wal) on that
# against the manifest (VERIFY_BASE_BACKUP=false skips this; restore-pitr.sh verifies again).
#
# Retention: keeps the newest KEEP_BASE_BACKUPS backups that can be restored onto the server's
# current timeline (after a point-in-time recovery, one taken on the old timeline after the
# recovery's end cannot, and does not count), then removes from the WAL archive every segment
# older than the oldest START_WAL of the kept backups (pg_archivecleanup), so each kept backup
# can still be rolled forward to the newest archived WAL.
#
# One database system per backup volume: every backup records the server's system identifier
# (backup_info SYSTEM_IDENTIFIER), and before anything is written the script refuses (status 1,
# nothing deleted) when the WAL archive or any kept base backup belongs to another identifier.
# A data directory initialised anew (an empty volume, a new cluster pointed here) would
# otherwise rotate out every backup of the real cluster; the failed Job raises the alert.
#
# Environment: PGHOST, PGPORT (default 5432), PGUSER (superuser or a role with REPLICATION),
# PGPASSWORD (or PGPASSFILE), BACKUP_DIR, WAL_ARCHIVE_DIR (both must exist),
# KEEP_BASE_BACKUPS (default 2), VERIFY_BASE_BACKUP (default true), WAIT_SECONDS (default 60).
# The server needs archive_mode=on and a pg_hba.conf line for "replication" connections.
# Exit status: 0 done, 1 failed (no partial backup left behind), 2 bad configuration, 143 (130)
# stopped by TERM (INT): the running step is stopped and no partial backup left behind.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=system-identifier.sh
source "$(dirname "${BASH_SOURCE[0]}")/system-identifier.sh"

log() { echo "base-backup: $*"; }
die() {
  echo "base-backup: ERROR: $*" >&2
  exit 1
}
config_error() {
  echo "base-backup: $*" >&2
  exit 2
}

for name in PGHOST PGUSER BACKUP_DIR WAL_ARCHIVE_DIR; do
  [ -n "${!name:-}" ] || config_error "$name is required"
done
[ -n "${PGPASSWORD:-}" ] || [ -n "${PGPASSFILE:-}" ] || config_error "PGPASSWORD is required (or PGPASSFILE)"
keep="${KEEP_BASE_BACKUPS:-2}"
[[ "$keep" =~ ^[1-9][0-9]*$ ]] || config_error "KEEP_BASE_BACKUPS must be a whole number of at least 1, not '$keep'"
verify="${VERIFY_BASE_BACKUP:-true}"
[[ "$verify" =~ ^(true|false)$ ]] || config_error "VERIFY_BASE_BACKUP must be true or false, not '$verify'"
wait_seconds="${WAIT_SECONDS:-60}"
[[ "$wait_seconds" =~ ^[0-9]+$ ]] || config_error "WAIT_SECONDS must be a whole number, not '$wait_seconds'"
[ -d "$BACKUP_DIR" ] || die "BACKUP_DIR $BACKUP_DIR does not exist (is the backup volume mounted?)"
[ -d "$WAL_ARCHIVE_DIR" ] || die "WAL_ARCHIVE_DIR $WAL_ARCHIVE_DIR does not exist (is the backup volume mounted?)"
maintenance_db="${PGDATABASE:-postgres}"
if [ "$verify" = true ]; then
  verifier=$(postgres_tool pg_verifybackup)
  [ -n "$verifier" ] || config_error "pg_verifybackup is not on PATH nor in /usr/lib/postgresql/<version>/bin: install PostgreSQL's server binaries (Debian: postgresql-15), or set VERIFY_BASE_BACKUP=false"
fi

base="$BACKUP_DIR/base"
mkdir -p "$base" || die "cannot create $base"
[ -w "$base" ] || die "$base is not writable by uid $(id -u)"

now_ms() { echo $(($(date +%s%N) / 1000000)); }
started_ms=$(now_ms)

stamp=$(date -u +%Y%m%dT%H%M%SZ)
while [ -e "$base/$stamp" ] || [ -e "$base/.$stamp.partial" ]; do
  sleep 1
  stamp=$(date -u +%Y%m%dT%H%M%SZ)
done
final="$base/$stamp"
partial="$base/.$stamp.partial"
label="secretid base backup $stamp"

committed=false
cleanup() {
  local status=$?
  if [ "$committed" != true ]; then
    rm -rf "$partial"
    [ "$status" -ne 0 ] || status=1
    echo "base-backup: FAILED after $(($(now_ms) - started_ms)) ms; no base backup was written" >&2
  fi
  exit "$status"
}
trap cleanup EXIT
# shellcheck source-path=SCRIPTDIR source=signals.sh
source "$(dirname "${BASH_SOURCE[0]}")/signals.sh"

log "waiting up to ${wait_seconds}s for PostgreSQL at ${PGHOST}:${PGPORT:-5432}"
deadline=$((SECONDS + wait_seconds))
until pg_isready -q -d "$maintenance_db"; do
  [ "$SECONDS" -lt "$deadline" ] || die "PostgreSQL at ${PGHOST}:${PGPORT:-5432} did not accept connections within ${wait_seconds}s"
  sleep 2
done
sql() { psql -X -A -t -q -v ON_ERROR_STOP=1 -d "$maintenance_db" -c "$1"; }
archive_mode=$(sql 'SHOW archive_mode') || die "cannot query the server's archive_mode"
case "$archive_mode" in
  on | always) ;;
  *) die "the server runs with archive_mode=$archive_mode: without WAL archiving a base backup taken with --wal-method=none cannot be restored. Set archive_mode=on and archive_command (archive-wal.sh) first" ;;
esac

pattern='[0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9]T[0-9][0-9][0-9][0-9][0-9][0-9]Z'
existing_backups() { find "$base" -mindepth 1 -maxdepth 1 -type d -name "$pattern" -printf '%f\n' | sort -r; }
system=$(sql 'SELECT system_identifier FROM pg_control_system()') || die "cannot read the server's system identifier"
[[ "$system" =~ ^[0-9]+$ ]] || die "the server's system identifier '$system' is not a number"
move_aside="If this server is the one to keep from now on, move $base and $WAL_ARCHIVE_DIR aside (e.g. mv $base $base.system-OLD; they still restore that system with restore-pitr.sh) and run again"
archive_system=$(archive_system_identifier "$WAL_ARCHIVE_DIR")
if [ -n "$archive_system" ] && [ "$archive_system" != "$system" ]; then
  die "the WAL archive $WAL_ARCHIVE_DIR belongs to database system $archive_system, but the server at ${PGHOST}:${PGPORT:-5432} is database system $system (its data directory was initialised anew?). Refusing to back up or rotate anything: nothing was deleted. ${move_aside/OLD/$archive_system}"
fi
while IFS= read -r backup; do
  backup_system=$(backup_system_identifier "$base/$backup")
  [ -n "$backup_system" ] || die "cannot tell which database system base backup $base/$backup belongs to (no SYSTEM_IDENTIFIER in backup_info, no readable pg_control in base.tar.gz). Refusing to rotate it: nothing was deleted. Move it aside if it is damaged"
  if [ "$backup_system" != "$system" ]; then
    die "base backup $base/$backup belongs to database system $backup_system, but the server at ${PGHOST}:${PGPORT:-5432} is database system $system (its data directory was initialised anew?). Refusing to back up or rotate anything: nothing was deleted. ${move_aside/OLD/$backup_system}"
  fi
done < <(existing_backups)
log "database system $system; the WAL archive and ${base} hold only backups of it"

log "base backup of ${PGHOST}:${PGPORT:-5432} as $PGUSER into $final (label '$label')"
run_step pg_basebackup --pgdata="$partial" --format=tar --gzip --wal-method=none --checkpoint=fast \
  --label="$label" --manifest-checksums=SHA256 --verbose ||
  die "pg_basebackup failed (see its messages above)"
# Taken after pg_basebackup returned, so no earlier than the end of the backup: a recovery
# target at or after this time is always past the point where the backup becomes consistent.
end_time=$(sql "SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')") ||
  die "cannot read the server's clock"
backup_ms=$(now_ms)
log "pg_basebackup finished in $((backup_ms - started_ms)) ms"

[ -s "$partial/base.tar.gz" ] || die "pg_basebackup wrote no base.tar.gz"
[ -s "$partial/backup_manifest" ] || die "pg_basebackup wrote no backup_manifest"
for extra in "$partial"/*.tar.gz; do
  case "$(basename "$extra")" in
    base.tar.gz | pg_wal.tar.gz) ;;
    *) die "unexpected $(basename "$extra"): tablespaces outside the data directory are not supported by restore-pitr.sh" ;;
  esac
done

backup_label=$(tar -xzOf "$partial/base.tar.gz" --occurrence=1 backup_label) || die "base.tar.gz has no readable backup_label"
start_line=$(grep '^START WAL LOCATION:' <<<"$backup_label") || die "backup_label has no START WAL LOCATION"
start_wal=$(sed -E 's/.*\(file ([0-9A-F]{24})\).*/\1/' <<<"$start_line")
[[ "$start_wal" =~ ^[0-9A-F]{24}$ ]] || die "cannot read the start WAL file from '$start_line'"
start_lsn=$(sed -E 's/^START WAL LOCATION: ([0-9A-F]+\/[0-9A-F]+).*/\1/' <<<"$start_line")
start_time=$(sed -n 's/^START TIME: //p' <<<"$backup_label")
timeline=$(sed -n 's/^START TIMELINE: //p' <<<"$backup_label")
end_lsn=$(grep -o '"End-LSN": *"[0-9A-F/]*"' "$partial/backup_manifest" | sed -E 's/.*"([0-9A-F/]+)"$/\1/' | tail -n 1)
[ -n "$end_lsn" ] || die "backup_manifest has no WAL-Ranges End-LSN"

# The backup history file the server archived at the end of the backup names the last segment.
stop_wal=""
for history in "$WAL_ARCHIVE_DIR/$start_wal".*.backup; do
  if ! [ -f "$history" ] || ! grep -qxF "LABEL: $label" "$history"; then continue; fi
  stop_wal=$(sed -nE 's/^STOP WAL LOCATION: .*\(file ([0-9A-F]{24})\).*/\1/p' "$history")
  cp "$history" "$partial/"
done
[ -n "$stop_wal" ] || die "the WAL archive $WAL_ARCHIVE_DIR has no backup history file for '$label': does archive_command write to this directory?"
for segment in "$start_wal" "$stop_wal"; do
  [ -f "$WAL_ARCHIVE_DIR/$segment" ] || die "WAL segment $segment, needed by this backup, is not in $WAL_ARCHIVE_DIR"
done
log "needs WAL from $start_wal (start $start_lsn) to $stop_wal (end $end_lsn) on timeline $timeline; both are archived"

if [ "$verify" = true ]; then
  scratch="$partial/.verify"
  mkdir -p "$scratch"
  run_step tar -xzf "$partial/base.tar.gz" -C "$scratch" || die "cannot unpack base.tar.gz to verify it"
  run_step "$verifier" --no-parse-wal --manifest-path="$partial/backup_manifest" "$scratch" ||
    die "pg_verifybackup found the unpacked backup does not match its manifest"
  rm -rf "$scratch"
  log "verified: every file of base.tar.gz matches its SHA256 in backup_manifest"
else
  log "VERIFY_BASE_BACKUP=false: not unpacking the backup to verify it"
fi

printf '%s\n' "$start_wal" >"$partial/START_WAL"
{
  echo "LABEL=$label"
  echo "TIMELINE=$timeline"
  echo "START_WAL=$start_wal"
  echo "STOP_WAL=$stop_wal"
  echo "START_LSN=$start_lsn"
  echo "END_LSN=$end_lsn"
  echo "START_TIME=$start_time"
  echo "END_TIME=$end_time"
  echo "SYSTEM_IDENTIFIER=$system"
} >"$partial/backup_info"
sync "$partial"/* "$partial"
mv "$partial" "$final"
committed=true
sync "$base"

bytes=$(du -sb "$final" | cut -f1)
log "wrote $final: $bytes bytes ($(numfmt --to=iec "$bytes")) in $(($(now_ms) - started_ms)) ms; restorable to any time after $end_time"

# Retention of base backups (all of this database system, checked above): exact timestamp
# names only, newest first. Only backups a restore can bring back onto this server's history
# count towards KEEP_BASE_BACKUPS: after a point-in-time recovery, a backup taken on the old
# timeline after the recovery's end can no longer be restored here, and counting it would
# delete the older backup that can. Such a backup is kept while it is newer than the oldest
# counted one (it still holds the abandoned history), then deleted with it.
mapfile -t all < <(existing_backups)
history_file="$WAL_ARCHIVE_DIR/$(printf '%08X' "$timeline").history"
if [ "$timeline" -gt 1 ] && ! [ -f "$history_file" ]; then
  log "WARNING: $history_file is not in the archive: cannot tell which base backups are on timeline $timeline's history, counting them all"
fi
kept=()
counted=0
for backup in "${all[@]}"; do
  if [ "$counted" -ge "$keep" ]; then
    rm -rf "${base:?}/$backup"
    log "retention: deleted base backup $backup"
    continue
  fi
  kept+=("$backup")
  off_history=$(backup_off_history "$WAL_ARCHIVE_DIR" "$timeline" "$base/$backup")
  if [ -n "$off_history" ]; then
    log "retention: base backup $backup does not count towards $keep: it cannot be restored onto timeline $timeline ($off_history); kept while newer than the oldest that counts"
  else
    counted=$((counted + 1))
  fi
done
find "$base" -mindepth 1 -maxdepth 1 -name '.*.partial' -mmin +1440 -exec rm -rf {} +
log "retention: kept ${#kept[@]} base backups, $counted of them restorable onto timeline $timeline (at most $keep count): ${kept[*]}"

# WAL retention: nothing older than the earliest START_WAL among the kept backups. Compare
# segment positions without the timeline (the first 8 hex digits), as pg_archivecleanup does:
# after a point-in-time recovery a newer backup can start on a later timeline at an earlier
# position than an older backup.
oldest_needed=""
for backup in "${kept[@]}"; do
  wal=$(cat "$base/$backup/START_WAL" 2>/dev/null || true)
  if ! [[ "$wal" =~ ^[0-9A-F]{24}$ ]]; then
    log "WARNING: $base/$backup has no valid START_WAL; not pruning the WAL archive"
    log "done in $(($(now_ms) - started_ms)) ms"
    exit 0
  fi
  if [ -z "$oldest_needed" ] || [[ "${wal:8}" < "${oldest_needed:8}" ]]; then
    oldest_needed="$wal"
  fi
done
count_segments() { find "$WAL_ARCHIVE_DIR" -maxdepth 1 -type f -regextype posix-extended -regex '.*/[0-9A-F]{24}(\.partial)?' | wc -l; }
before=$(count_segments)
pg_archivecleanup "$WAL_ARCHIVE_DIR" "$oldest_needed" || die "pg_archivecleanup failed"
# pg_archivecleanup leaves backup history files (*.backup); remove those of deleted backups too.
while IFS= read -r history; do
  name=$(basename "$history")
  if [[ "${name:8:16}" < "${oldest_needed:8}" ]]; then rm -f "$history"; fi
done < <(find "$WAL_ARCHIVE_DIR" -maxdepth 1 -type f -name '*.backup')
after=$(count_segments)
log "WAL retention: removed $((before - after)) segments older than $oldest_needed; $after remain in $WAL_ARCHIVE_DIR"
log "done in $(($(now_ms) - started_ms)) ms"
