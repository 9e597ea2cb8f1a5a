#!/usr/bin/env bash
# Sourced by archive-wal.sh, base-backup.sh and restore-pitr.sh (not run on its own): which
# PostgreSQL database system a WAL segment, a WAL archive and a base backup belong to.
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
