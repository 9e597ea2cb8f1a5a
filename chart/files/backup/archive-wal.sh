#!/usr/bin/env bash
# PostgreSQL's archive_command: copies one finished WAL segment into the WAL archive.
#
#   archive_command = '/path/archive-wal.sh %p %f'        (archive directory from WAL_ARCHIVE_DIR)
#   archive_command = '/path/archive-wal.sh %p %f /dir'   (archive directory as third argument)
#
# %p is the segment's path relative to the data directory (the server's working directory),
# %f its file name. The copy goes to a temporary name in the archive, is flushed to disk, then
# renamed, so the archive never holds a half-written segment under a real name. An existing
# file of the same name is never overwritten: same content (the server retries a segment whose
# success it did not record, e.g. after a crash) is success, different content is an error.
# Exit 0 tells PostgreSQL the segment is safe and may be recycled; anything else makes it keep
# the segment and retry. Messages go to stderr, which the server writes to its log.
#
# The archive belongs to one database system: the first segment records its system identifier
# in <archive>/SYSTEM_IDENTIFIER, and a segment of another identifier (a re-initialised data
# directory, or a second cluster pointed here) is refused, so the server keeps it, retries and
# the WAL-archiving alert fires, instead of mixing two clusters' WAL under one retention.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=system-identifier.sh
source "$(dirname "${BASH_SOURCE[0]}")/system-identifier.sh"

fail() {
  echo "archive-wal: ERROR: $*" >&2
  exit 1
}

[ "$#" -eq 2 ] || [ "$#" -eq 3 ] || {
  echo "archive-wal: usage: archive-wal.sh %p %f [archive-directory] (or WAL_ARCHIVE_DIR)" >&2
  exit 2
}
source_path="$1"
file_name="$2"
archive="${3:-${WAL_ARCHIVE_DIR:-}}"
[ -n "$archive" ] || {
  echo "archive-wal: WAL_ARCHIVE_DIR is required (or pass the archive directory as third argument)" >&2
  exit 2
}

case "$file_name" in
  "" | */* | .*) fail "refusing file name '$file_name' (expected a WAL file name such as 000000010000000000000001)" ;;
esac
[ -f "$source_path" ] || fail "$source_path (for $file_name) is not a file (working directory $(pwd))"
[ -d "$archive" ] || fail "archive directory $archive does not exist (is the backup volume mounted?)"
if ! [ -w "$archive" ] || ! [ -x "$archive" ]; then
  fail "archive directory $archive is not writable by uid $(id -u)"
fi

if [[ "$file_name" =~ ^[0-9A-F]{24}(\.partial)?$ ]]; then
  incoming_system=$(segment_system_identifier "$source_path")
  [ -n "$incoming_system" ] || fail "$source_path has no WAL page header with a system identifier: not a WAL segment"
  archive_system=$(archive_system_identifier "$archive")
  if [ -n "$archive_system" ] && [ "$archive_system" != "$incoming_system" ]; then
    fail "the archive $archive holds WAL of database system $archive_system, but $file_name comes from database system $incoming_system (a re-initialised data directory, or another cluster archiving here); refusing to mix them, nothing was written. If this server is the one to keep now, move the archive and the base backups aside (they still restore system $archive_system) and give archive_command an empty directory"
  fi
  if ! [ -s "$archive/SYSTEM_IDENTIFIER" ]; then
    marker="$archive/.SYSTEM_IDENTIFIER.$$.tmp"
    if ! { printf '%s\n' "$incoming_system" >"$marker" && sync "$marker" && mv -f "$marker" "$archive/SYSTEM_IDENTIFIER"; }; then
      rm -f "$marker"
      fail "cannot record the system identifier in $archive/SYSTEM_IDENTIFIER"
    fi
    echo "archive-wal: the archive $archive belongs to database system $incoming_system from now on" >&2
  fi
fi

# A copy killed before its rename (the server stopped, the pod deleted) leaves its temporary
# file behind, and nothing else would ever remove it. The server archives one file at a time
# and a copy takes seconds, so one older than an hour is such a leftover.
leftovers=$(find "$archive" -maxdepth 1 -type f -name '.*.tmp' -mmin +60 -print -delete 2>/dev/null | wc -l) || leftovers=0
[ "$leftovers" -eq 0 ] || echo "archive-wal: removed $leftovers leftover temporary file(s) older than an hour from $archive" >&2

target="$archive/$file_name"
if [ -e "$target" ]; then
  existing=$(sha256sum "$target" | cut -d' ' -f1) || fail "cannot read the existing $target"
  incoming=$(sha256sum "$source_path" | cut -d' ' -f1) || fail "cannot read $source_path"
  if [ "$existing" = "$incoming" ]; then
    # The earlier attempt may have renamed it and died before flushing: make sure the file and
    # its directory entry are on disk before telling the server the segment is safe.
    { sync "$target" && sync "$archive"; } || fail "flushing the existing $target to disk failed"
    echo "archive-wal: $file_name is already archived with identical content (sha256 $existing); flushed it to disk again" >&2
    exit 0
  fi
  fail "$target already exists with DIFFERENT content (archived sha256 $existing, this server's sha256 $incoming); refusing to overwrite it. Two servers may be archiving into the same directory, or the archive belongs to an older cluster: move the archive aside or fix archive_command"
fi

temporary="$archive/.$file_name.$$.tmp"
trap 'rm -f "$temporary"' EXIT
cp "$source_path" "$temporary" || fail "copying $source_path to $temporary failed"
sync "$temporary" || fail "flushing $temporary to disk failed"
# The server archives one segment at a time, so nothing else creates $target meanwhile.
mv -f "$temporary" "$target" || fail "renaming $temporary to $target failed"
sync "$archive" || fail "flushing the directory $archive failed"
