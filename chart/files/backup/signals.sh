#!/usr/bin/env bash
# Sourced by backup-dump.sh, base-backup.sh and restore-pitr.sh (not run on its own), after
# their EXIT trap: long steps run as children the script waits for, so that a TERM or INT
# stops them at once and the EXIT trap removes the partial files.
#
# In the backup Jobs bash is the container's PID 1 and alone receives the kubelet's TERM (the
# Job deleted, its activeDeadlineSeconds reached, its node drained). Bash runs a trap only
# after the foreground command has returned, so a pg_dump waiting on a lock went on running,
# and the KILL at the end of the grace period skipped the cleanup, leaving the partial files
# for a later run to find. `wait` is interrupted by a trapped signal: the trap stops the step,
# waits for it and exits with 128 + the signal's number, which runs the EXIT trap.

running_step=""
stop_on_signal() {
  local signal="$1" number="$2"
  echo "${0##*/}: received SIG$signal; stopping${running_step:+ the running step (pid $running_step)} and cleaning up" >&2
  if [ -n "$running_step" ]; then
    kill -TERM "$running_step" 2>/dev/null || true
    wait "$running_step" 2>/dev/null || true
  fi
  exit $((128 + number))
}
trap 'stop_on_signal TERM 15' TERM
trap 'stop_on_signal INT 2' INT

# Runs a command as a child and waits for it; returns its exit status.
run_step() {
  local status=0
  "$@" &
  running_step=$!
  wait "$running_step" || status=$?
  running_step=""
  return "$status"
}
