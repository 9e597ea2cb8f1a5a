#!/usr/bin/env bash
# Sourced by archive-wal.sh, base-backup.sh and restore-pitr.sh (not run on its own): which
# PostgreSQL database system a WAL segment, a WAL archive and a base backup belong to, and
# whether a base backup lies on the history of the archive's current timeline.
#
# Every cluster gets a random 64-bit system identifier from initdb; it survives restarts,
# base backups and point-in-time recoveries, and changes only when a data directory is
# initialised anew. A WAL archive or base backup of another identifier can never be replayed
# on this cluster, so retention and restores must not count it as one of this cluster's.
#
#   <WAL archive>/SYSTEM_IDENTIFIER     written by archive-wal.sh with the first segment
#   <base backup>/backup_info           SYSTEM_IDENTIFIER=... written by base-backup.sh

# The identifier in a WAL segment's first page (XLogLongPageHeaderData: the 8 bytes at offset
# 24, in the server's byte order, which is this machine's: backups never cross architectures).
# Prints nothing for a file too short to be a segment.
segment_system_identifier() {
  local value
  value=$(od -An -t u8 -j 24 -N 8 -- "$1" 2>/dev/null | tr -d ' ') || return 0
  [[ "$value" =~ ^[1-9][0-9]*$ ]] && echo "$value"
  return 0
}

# The identifier a WAL archive belongs to: its SYSTEM_IDENTIFIER file, else (archives written
# before that file existed) the one in its newest segment. Prints nothing for an empty archive.
archive_system_identifier() {
  local archive="$1" newest
  if [ -s "$archive/SYSTEM_IDENTIFIER" ]; then
    tr -d '[:space:]' <"$archive/SYSTEM_IDENTIFIER"
    return 0
  fi
  newest=$(find "$archive" -maxdepth 1 -type f -regextype posix-extended -regex '.*/[0-9A-F]{24}' -printf '%f\n' 2>/dev/null | sort | tail -n 1)
  [ -z "$newest" ] || segment_system_identifier "$archive/$newest"
}

# The identifier of a base backup of base-backup.sh: from backup_info, else (backups written
# before it recorded one) from the pg_control file inside base.tar.gz. Prints nothing when
# neither can be read.
backup_system_identifier() {
  local backup="$1" recorded scratch
  recorded=$(sed -n 's/^SYSTEM_IDENTIFIER=//p' "$backup/backup_info" 2>/dev/null | head -n 1)
  if [ -n "$recorded" ]; then
    echo "$recorded"
    return 0
  fi
  [ -f "$backup/base.tar.gz" ] || return 0
  scratch=$(mktemp -d) || return 0
  mkdir -p "$scratch/global"
  if tar -xzOf "$backup/base.tar.gz" global/pg_control >"$scratch/global/pg_control" 2>/dev/null; then
    pg_controldata "$scratch" 2>/dev/null | sed -n 's/^Database system identifier: *//p'
  fi
  rm -rf "$scratch"
}

# A WAL position ("16/B374D848") as one number, to compare positions.
lsn_number() {
  local high="${1%/*}" low="${1#*/}"
  echo $(((16#$high << 32) + 16#$low))
}

# The newest timeline of a WAL archive, which a recovery to the latest timeline follows: the
# highest <timeline>.history file there (PostgreSQL archives one at every promotion), else 1.
archive_timeline() {
  local newest
  newest=$(find "$1" -maxdepth 1 -type f -regextype posix-extended -regex '.*/[0-9A-F]{8}\.history' -printf '%f\n' 2>/dev/null | sort | tail -n 1)
  if [ -n "$newest" ]; then echo $((16#${newest%.history})); else echo 1; fi
}

# Why a base backup of base-backup.sh cannot be restored onto the history of a timeline of the
# archive, or nothing when it can (or when that cannot be told: a backup without TIMELINE or
# END_LSN in backup_info, or no history file of the timeline in the archive). A point-in-time
# recovery starts a new timeline that leaves the old one at the recovery's end: a backup of an
# older timeline that ended after that switch point holds changes the recovery abandoned, and
# PostgreSQL cannot start from it following the new timeline (it looks for the backup's
# checkpoint there: "could not locate required checkpoint record", or "requested timeline ...
# is not a child of this server's history"), nor from a timeline not in that history at all.
backup_off_history() {
  local archive="$1" current="$2" backup="$3" backup_timeline end_lsn history parent switch
  backup_timeline=$(sed -n 's/^TIMELINE=//p' "$backup/backup_info" 2>/dev/null | head -n 1)
  end_lsn=$(sed -n 's/^END_LSN=//p' "$backup/backup_info" 2>/dev/null | head -n 1)
  if ! [[ "$backup_timeline" =~ ^[0-9]+$ ]] || ! [[ "$end_lsn" =~ ^[0-9A-F]+/[0-9A-F]+$ ]]; then return 0; fi
  [ "$backup_timeline" -ne "$current" ] || return 0
  history="$archive/$(printf '%08X' "$current").history"
  [ -f "$history" ] || return 0
  # Lines of "<parent timeline> <switch point> <reason>", every ancestor of the timeline.
  while read -r parent switch _; do
    if ! [[ "$parent" =~ ^[0-9]+$ ]] || [ "$parent" -ne "$backup_timeline" ]; then continue; fi
    [[ "$switch" =~ ^[0-9A-F]+/[0-9A-F]+$ ]] || return 0
    if [ "$(lsn_number "$end_lsn")" -gt "$(lsn_number "$switch")" ]; then
      echo "it ended at $end_lsn on timeline $backup_timeline, after timeline $current left that timeline at $switch (what followed there was abandoned by a point-in-time recovery)"
    fi
    return 0
  done <"$history"
  echo "its timeline $backup_timeline is not in the history of timeline $current"
}

# The path of a PostgreSQL program: on PATH (the official image has them all there), else in
# the server binaries' folder of Debian's packages (pg_verifybackup is not in /usr/bin there),
# for the major version of the pg_basebackup on PATH. Prints nothing when there is none.
postgres_tool() {
  local found major
  found=$(command -v "$1" 2>/dev/null) && { echo "$found"; return 0; }
  major=$(pg_basebackup --version 2>/dev/null | sed -n 's/.* \([0-9][0-9]*\)\.[0-9].*/\1/p')
  if [ -n "$major" ]; then
    found="/usr/lib/postgresql/$major/bin/$1"
    [ -x "$found" ] && echo "$found"
  fi
  return 0
}
