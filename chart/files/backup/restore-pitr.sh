#!/usr/bin/env bash
# Prepares a point-in-time recovery: unpacks a base backup (base-backup.sh) into an empty data
# directory, checks it against its manifest, and configures recovery from the WAL archive up to
# TARGET_TIME, then promotion. It does not start PostgreSQL: the next start of a server on
# PGDATA replays the archived WAL, stops at the target and opens on a new timeline.
#
# Environment:
#   PGDATA           empty (or not yet existing) data directory to restore into
#   WAL_ARCHIVE_DIR  the WAL archive (archive-wal.sh), at the path the SERVER will see it:
#                    it is written into restore_command
#   TARGET_TIME      e.g. 2024-05-01T12:34:56Z or '2024-05-01 14:34:56.123+02'; without a
#                    zone it means UTC. 'latest' replays all archived WAL instead.
#   BASE_BACKUP      a base backup directory (<BACKUP_DIR>/base/<timestamp>), or else
#   BACKUP_DIR       to pick the newest base backup that ended before TARGET_TIME, belongs
#                    to the database system whose WAL the archive holds (never another one)
#                    and lies on the history of the archive's newest timeline (after an
#                    earlier point-in-time recovery, not one that recovery abandoned).
# Refuses (status 1, PGDATA untouched) when PGDATA is not empty, the target lies before the
# end of the base backup, the backup's first WAL segment is not in the archive, the backup
# and that segment belong to different database systems (system identifiers), or the backup
# is not on the history of the archive's newest timeline (PostgreSQL would refuse it).
# Run it as the user PostgreSQL runs as (uid 999 in the official image); run as root, it gives
# the restored files to the owner of PGDATA, which must then exist and not belong to root.
# Exit status: 0 prepared, 1 refused or failed, 2 bad configuration, 143 (130) stopped by
# TERM (INT); PGDATA is emptied again on every failure.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=system-identifier.sh
source "$(dirname "${BASH_SOURCE[0]}")/system-identifier.sh"

log() { echo "restore-pitr: $*"; }
die() {
  echo "restore-pitr: ERROR: $*" >&2
  exit 1
}
config_error() {
  echo "restore-pitr: $*" >&2
  exit 2
}

for name in PGDATA WAL_ARCHIVE_DIR TARGET_TIME; do
  [ -n "${!name:-}" ] || config_error "$name is required"
done
verifier=$(postgres_tool pg_verifybackup)
[ -n "$verifier" ] || config_error "pg_verifybackup is not on PATH nor in /usr/lib/postgresql/<version>/bin: install PostgreSQL's server binaries (Debian: postgresql-15); without it the backup cannot be checked before it is restored"
[ -n "${BASE_BACKUP:-}" ] || [ -n "${BACKUP_DIR:-}" ] || config_error "BASE_BACKUP is required (or BACKUP_DIR, to pick the newest base backup before TARGET_TIME)"
# restore_command is a quoted setting run by a shell: keep the path to plain characters.
[[ "$WAL_ARCHIVE_DIR" =~ ^/[A-Za-z0-9_./-]*$ ]] ||
  config_error "WAL_ARCHIVE_DIR must be an absolute path of letters, digits and _ . / - only, not '$WAL_ARCHIVE_DIR'"
[ -d "$WAL_ARCHIVE_DIR" ] || die "WAL_ARCHIVE_DIR $WAL_ARCHIVE_DIR does not exist (is the backup volume mounted?)"

# Times become microseconds since the epoch for comparisons, and UTC text for PostgreSQL.
micros() { TZ=UTC date -u -d "$1" +%s%6N; }
if [ "$TARGET_TIME" = latest ]; then
  target_text="the end of the archived WAL"
  target_us=""
else
  [[ "$TARGET_TIME" =~ ^[0-9]{4}-[0-9]{2}-[0-9]{2}([T\ ][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]+)?)?)?(\ ?(Z|UTC|[+-][0-9]{2}(:?[0-9]{2})?))?$ ]] ||
    config_error "TARGET_TIME '$TARGET_TIME' is not a timestamp such as 2024-05-01T12:34:56Z or '2024-05-01 14:34:56+02' (or 'latest')"
  target_us=$(micros "$TARGET_TIME") || config_error "TARGET_TIME '$TARGET_TIME' is not a valid time"
  target_utc=$(TZ=UTC date -u -d "$TARGET_TIME" '+%Y-%m-%d %H:%M:%S.%6N+00')
  target_text="$target_utc"
fi

backup_end() { sed -n 's/^END_TIME=//p' "$1/backup_info" 2>/dev/null; }
archive_system=$(archive_system_identifier "$WAL_ARCHIVE_DIR")
archive_timeline=$(archive_timeline "$WAL_ARCHIVE_DIR")
if [ -n "${BASE_BACKUP:-}" ]; then
  backup="${BASE_BACKUP%/}"
else
  [ -n "$archive_system" ] || die "the WAL archive $WAL_ARCHIVE_DIR holds no WAL segment, so no base backup can be rolled forward from it; nothing was changed"
  backup=""
  pattern='[0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9]T[0-9][0-9][0-9][0-9][0-9][0-9]Z'
  while IFS= read -r candidate; do
    end=$(backup_end "$BACKUP_DIR/base/$candidate")
    [ -n "$end" ] || continue
    candidate_system=$(backup_system_identifier "$BACKUP_DIR/base/$candidate")
    if [ "$candidate_system" != "$archive_system" ]; then
      log "skipping base backup $candidate: it belongs to database system ${candidate_system:-unknown}, the WAL archive to $archive_system"
      continue
    fi
    off_history=$(backup_off_history "$WAL_ARCHIVE_DIR" "$archive_timeline" "$BACKUP_DIR/base/$candidate")
    if [ -n "$off_history" ]; then
      log "skipping base backup $candidate: recovery follows timeline $archive_timeline, and $off_history"
      continue
    fi
    if [ -z "$target_us" ] || [ "$(micros "$end")" -le "$target_us" ]; then
      backup="$BACKUP_DIR/base/$candidate"
      break
    fi
  done < <(find "$BACKUP_DIR/base" -mindepth 1 -maxdepth 1 -type d -name "$pattern" -printf '%f\n' 2>/dev/null | sort -r)
  [ -n "$backup" ] || die "no base backup of database system $archive_system in $BACKUP_DIR/base ended before $target_text; nothing was changed"
  log "picked base backup $backup"
fi
[ -f "$backup/base.tar.gz" ] || die "$backup/base.tar.gz is missing: not a base backup of base-backup.sh; nothing was changed"
[ -f "$backup/backup_manifest" ] || die "$backup/backup_manifest is missing, the backup cannot be verified; nothing was changed"
start_wal=$(cat "$backup/START_WAL" 2>/dev/null || true)
[[ "$start_wal" =~ ^[0-9A-F]{24}$ ]] || die "$backup/START_WAL is missing or invalid; nothing was changed"
[ -f "$WAL_ARCHIVE_DIR/$start_wal" ] ||
  die "the WAL archive $WAL_ARCHIVE_DIR lacks $start_wal, the first segment this backup needs (pruned, or another archive?); nothing was changed"
backup_system=$(backup_system_identifier "$backup")
[ -n "$backup_system" ] || die "cannot tell which database system $backup belongs to (no SYSTEM_IDENTIFIER in backup_info, no readable pg_control in base.tar.gz); nothing was changed"
segment_system=$(segment_system_identifier "$WAL_ARCHIVE_DIR/$start_wal")
[ "$segment_system" = "$backup_system" ] ||
  die "base backup $backup is of database system $backup_system, but $start_wal in the WAL archive $WAL_ARCHIVE_DIR is of database system ${segment_system:-unknown}: that WAL cannot be replayed on this backup. Use the archive this backup was taken with; nothing was changed"
off_history=$(backup_off_history "$WAL_ARCHIVE_DIR" "$archive_timeline" "$backup")
[ -z "$off_history" ] ||
  die "base backup $backup cannot be restored onto timeline $archive_timeline, the newest in $WAL_ARCHIVE_DIR, which recovery follows: $off_history. PostgreSQL would not start from it (\"could not locate required checkpoint record\"); pick a backup of that history (BACKUP_DIR picks one); nothing was changed"
end_time=$(backup_end "$backup")
if [ -z "$end_time" ]; then
  log "WARNING: $backup/backup_info has no END_TIME; cannot check that the target lies after the backup"
elif [ -n "$target_us" ] && [ "$target_us" -lt "$(micros "$end_time")" ]; then
  die "the target $target_text is before the end of base backup $backup ($end_time): recovery cannot stop before a backup is consistent. Choose an older base backup (or a later time); nothing was changed"
fi

if [ -e "$PGDATA" ]; then
  [ -d "$PGDATA" ] || die "PGDATA $PGDATA exists and is not a directory; nothing was changed"
  if [ -n "$(find "$PGDATA" -mindepth 1 -maxdepth 1 -print -quit)" ]; then
    die "PGDATA $PGDATA is not empty: refusing to restore over existing files. Move the old data directory aside first (mv $PGDATA $PGDATA.broken-\$(date -u +%Y%m%dT%H%M%SZ)); nothing was changed"
  fi
else
  mkdir -m 700 "$PGDATA" || die "cannot create PGDATA $PGDATA"
fi
owner=$(stat -c %u:%g "$PGDATA")
if [ "$(id -u)" = 0 ] && [ "${owner%%:*}" = 0 ]; then
  die "running as root and PGDATA $PGDATA belongs to root: PostgreSQL never runs as root. chown it to the server's user (e.g. chown 999:999) or run this script as that user; nothing was changed"
fi
[ -w "$PGDATA" ] || die "PGDATA $PGDATA is not writable by uid $(id -u)"

# From here on PGDATA was empty and is ours: on failure, empty it again so a retry can start.
prepared=false
cleanup() {
  local status=$?
  if [ "$prepared" != true ]; then
    find "$PGDATA" -mindepth 1 -maxdepth 1 -exec rm -rf {} +
    [ "$status" -ne 0 ] || status=1
    echo "restore-pitr: FAILED; $PGDATA was emptied again" >&2
  fi
  exit "$status"
}
trap cleanup EXIT
# shellcheck source-path=SCRIPTDIR source=signals.sh
source "$(dirname "${BASH_SOURCE[0]}")/signals.sh"

log "unpacking $backup/base.tar.gz into $PGDATA"
run_step tar -xzf "$backup/base.tar.gz" -C "$PGDATA" || die "unpacking base.tar.gz failed: the backup is damaged"
if [ -f "$backup/pg_wal.tar.gz" ]; then
  mkdir -p "$PGDATA/pg_wal"
  tar -xzf "$backup/pg_wal.tar.gz" -C "$PGDATA/pg_wal" || die "unpacking pg_wal.tar.gz failed"
fi
run_step "$verifier" --no-parse-wal --manifest-path="$backup/backup_manifest" "$PGDATA" ||
  die "the unpacked backup does not match backup_manifest: the backup is damaged"
log "verified every file against backup_manifest (SHA256)"

# A base backup of a server that was itself recovered earlier (its ALTER SYSTEM RESET steps
# not done) carries that recovery's settings in postgresql.auto.conf. With 'latest' nothing
# below would override its recovery_target_time, and recovery would stop there again; so only
# this restore's settings apply.
auto_conf="$PGDATA/postgresql.auto.conf"
recovery_settings='^[[:space:]]*(restore_command|recovery_target[a-z_]*)[[:space:]]*='
if [ -f "$auto_conf" ] && grep -qE "$recovery_settings" "$auto_conf"; then
  inherited=$(grep -cE "$recovery_settings" "$auto_conf")
  { grep -vE "$recovery_settings" "$auto_conf" >"$auto_conf.new" && mv -f "$auto_conf.new" "$auto_conf"; } ||
    die "cannot remove the recovery settings the base backup carried in $auto_conf"
  log "removed $inherited recovery setting(s) the base backup carried in postgresql.auto.conf (left by an earlier recovery): only this restore's apply"
fi

{
  echo "# Added by restore-pitr.sh at $(date -u +%Y-%m-%dT%H:%M:%SZ): recovery from"
  echo "# $backup to $target_text. Remove after the recovery (ALTER SYSTEM RESET ...)."
  echo "restore_command = 'cp \"$WAL_ARCHIVE_DIR/%f\" \"%p\"'"
  [ -z "$target_us" ] || echo "recovery_target_time = '$target_utc'"
  echo "recovery_target_timeline = 'latest'"
  echo "recovery_target_action = 'promote'"
} >>"$PGDATA/postgresql.auto.conf"
touch "$PGDATA/recovery.signal"
chmod 700 "$PGDATA"
if [ "$(id -u)" = 0 ]; then chown -R "$owner" "$PGDATA"; fi
sync "$PGDATA"
prepared=true

log "prepared $PGDATA: base backup $backup (ended $end_time, first WAL $start_wal), recovery to $target_text, then promote"
cat <<EOF
restore-pitr: next steps
  1. Start PostgreSQL on $PGDATA (Kubernetes: scale the StatefulSet back to 1; by hand:
     pg_ctl -D $PGDATA -l recovery.log start). It restores WAL from $WAL_ARCHIVE_DIR.
  2. Watch the log for "recovery stopping before commit ..." and "archive recovery complete".
     "recovery ended before configured recovery target was reached" means the archive has no
     WAL up to the target: restore again with an earlier TARGET_TIME (or 'latest').
  3. Check: SELECT pg_is_in_recovery();  -- f once promoted
            SELECT timeline_id FROM pg_control_checkpoint();  -- one higher than before
     plus row counts and per-table checksums (docs/disaster-recovery.md).
  4. Clean up the recovery settings, then take a new base backup (the new timeline):
     ALTER SYSTEM RESET restore_command; ALTER SYSTEM RESET recovery_target_time;
     ALTER SYSTEM RESET recovery_target_timeline; ALTER SYSTEM RESET recovery_target_action;
EOF
