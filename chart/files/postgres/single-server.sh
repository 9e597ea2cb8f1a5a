#!/bin/sh
# The PostgreSQL container's command: one server per data directory, across nodes too.
# Usage: single-server.sh <lock file on the data volume> <seconds to wait for it> <postgres args>
#
# PostgreSQL's own postmaster.pid only guards one machine: a server started on another node
# (a force-deleted pod whose node is partitioned, not dead) finds the PID of the old one absent
# in its own PID namespace, takes the file for stale and starts: two servers on one data
# directory corrupt it. This holds an exclusive lock on a file of the volume (flock; on NFS the
# client turns it into a lock the server arbitrates) for the server's whole life: the lock's
# descriptor is inherited by the entrypoint and by postgres, which replace this shell (exec), so
# it is released only when the server and all its processes have ended. A second server waits
# for it, then refuses to start, naming the cause. It is a guard, not fencing: a node cut off
# from the NFS server keeps running its server until it is fenced (docs/disaster-recovery.md).
set -eu
lock=$1
wait_seconds=$2
shift 2
exec 9>>"$lock"
if ! flock -w "$wait_seconds" 9; then
  echo "single-server: another PostgreSQL server holds $lock (on this node or on another one that mounts this volume), still after ${wait_seconds} s; refusing to start a second server on one data directory, which would corrupt it. If that server's node is lost, fence the node first (docs/disaster-recovery.md, \"A lost node\")." >&2
  exit 1
fi
echo "single-server: holding $lock"
exec docker-entrypoint.sh "$@"
