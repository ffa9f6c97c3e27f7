#!/usr/bin/env bash
# .ci/slurm_down.sh — stop exactly what .ci/slurm_up.sh started, by the pid files in
# $SLURM_SCRATCH (never by process name). Cancels the cluster's remaining jobs first. Safe to run
# twice or after a partial start. Leaves /etc/slurm and $SLURM_SCRATCH in place (logs).
set -uo pipefail

: "${SLURM_SCRATCH:?set SLURM_SCRATCH to the directory given to slurm_up.sh}"
S=$(realpath -m "$SLURM_SCRATCH")

alive() { # alive PIDFILE COMM
    local pid
    [ -s "$1" ] || return 1
    pid=$(cat "$1")
    [ -r "/proc/$pid/comm" ] && [ "$(cat "/proc/$pid/comm")" = "$2" ]
}

# stop PIDFILE COMM SECONDS: SIGTERM, wait, then SIGKILL; a pid that now belongs to another
# program (reused) is left alone.
stop() {
    local pidfile=$1 comm=$2 secs=$3 pid
    if ! alive "$pidfile" "$comm"; then
        rm -f "$pidfile"
        return 0
    fi
    pid=$(cat "$pidfile")
    kill -TERM "$pid" 2>/dev/null
    for _ in $(seq $((secs * 5))); do
        [ -d "/proc/$pid" ] || break
        sleep 0.2
    done
    if [ -d "/proc/$pid" ]; then
        echo "slurm_down: $comm ($pid) ignored SIGTERM for ${secs}s, sending SIGKILL" >&2
        kill -KILL "$pid" 2>/dev/null
    fi
    rm -f "$pidfile"
    echo "slurm_down: stopped $comm ($pid)" >&2
}

# Jobs still running (a test that failed half-way): cancel them while slurmctld is up, so their
# slurmstepd processes end with them.
if alive "$S/slurmctld.pid" slurmctld; then
    jobs=$(timeout 10 squeue -h -o %i 2>/dev/null)
    if [ -n "$jobs" ]; then
        # shellcheck disable=SC2086
        timeout 10 scancel $jobs 2>/dev/null
        for _ in $(seq 20); do
            [ -z "$(timeout 10 squeue -h -t R,CG,PD -o %i 2>/dev/null)" ] && break
            sleep 0.5
        done
    fi
fi

stop "$S/slurmd.pid" slurmd 15
stop "$S/slurmctld.pid" slurmctld 15
stop "$S/slurmdbd.pid" slurmdbd 15
stop "$S/mariadb.pid" mariadbd 30
# munged only if slurm_up.sh started it (it reuses a running one and then records nothing)
stop "$S/munged.pid" munged 10
exit 0
