#!/usr/bin/env bash
# .ci/slurm_up.sh — a single-node Slurm cluster on loopback, for the Slurm workflow test.
#
#   SLURM_SCRATCH=/some/dir .ci/slurm_up.sh      # as root, Debian/Ubuntu, no systemd needed
#   SLURM_SCRATCH=/some/dir .ci/slurm_down.sh    # stops exactly what this script started
#
# Daemons: munged, a private mariadbd (own datadir, socket and port under $SLURM_SCRATCH),
# slurmdbd, slurmctld, slurmd. With slurmdbd, `sacct` works, which is what the
# snakemake-executor-plugin-slurm polls by default: the test then runs the profile exactly as
# users do on a real cluster. (Without accounting, `sacct` fails and the plugin waits forever
# unless `--slurm-status-command squeue` is given; see specs/snakemake_ecosystem.md §6.)
#
# State, logs and pid files go to $SLURM_SCRATCH; configuration to /etc/slurm (the inner `srun`
# of a batch job ignores a SLURM_CONF elsewhere). Idempotent: a second call with the same
# scratch dir finds the daemons alive by pid file and leaves them alone.
#
# Exit status 77 means "this machine cannot host the cluster" (not root, no apt-get, packages
# not installable, a Slurm that is not ours already configured or listening); callers skip then.
#
# Settings (environment):
#   SLURM_SCRATCH      required; created if missing
#   SLURM_CI_CPUS      CPUs the node declares (default 32)
#   SLURM_CI_MEM_MB    memory the node declares (default 262144)
#   SLURM_CI_GPUS      fake GPUs the node declares (default 2, max 2)
#   SLURM_CI_DB_PORT   TCP port of the private mariadbd on 127.0.0.1 (default 3307)
# The node is declared larger than the machine (SlurmdParameters=config_overrides) so that the
# requests of workflow/profiles/slurm (sized for a real GPU node) are schedulable here. Nothing is
# enforced (task/none, proctrack/linuxproc): concurrency is bounded by Snakemake's --jobs, and a
# job's threads by the CPUs it really sees (Snakemake's inner `--cores all`).
set -euo pipefail

skip() { echo "slurm_up: SKIP: $*" >&2; exit 77; }
die() { echo "slurm_up: ERROR: $*" >&2; exit 1; }
log() { echo "slurm_up: $*" >&2; }

: "${SLURM_SCRATCH:?set SLURM_SCRATCH to a writable directory}"
S=$(realpath -m "$SLURM_SCRATCH")
CPUS=${SLURM_CI_CPUS:-32}
MEM=${SLURM_CI_MEM_MB:-262144}
GPUS=${SLURM_CI_GPUS:-2}
DBPORT=${SLURM_CI_DB_PORT:-3307}
C=/etc/slurm
MARK="# written by repaudit .ci/slurm_up.sh; scratch=$S"
HERE=$(cd "$(dirname "$0")" && pwd)

[ "$(uname -s)" = Linux ] || skip "needs Linux"
[ "$(id -u)" = 0 ] || skip "needs root (starts daemons, writes /etc/slurm)"
case $GPUS in 0 | 1 | 2) ;; *) die "SLURM_CI_GPUS must be 0, 1 or 2" ;; esac

# ------------------------------------------------------------------ packages
PKGS="slurmctld slurmd slurm-client slurmdbd munge mariadb-server"
need_install=0
for cmd in slurmctld slurmd sbatch sacct sacctmgr slurmdbd munged mariadbd mariadb-install-db; do
    command -v "$cmd" >/dev/null 2>&1 || need_install=1
done
if [ $need_install = 1 ]; then
    command -v apt-get >/dev/null 2>&1 || skip "Slurm is not installed and there is no apt-get"
    log "installing $PKGS (apt-get)"
    export DEBIAN_FRONTEND=noninteractive
    if ! { apt-get update -q && apt-get install -y -q --no-install-recommends $PKGS; } \
        >"/tmp/slurm_up_apt.$$.log" 2>&1; then
        tail -n 20 "/tmp/slurm_up_apt.$$.log" >&2
        skip "apt-get could not install $PKGS (log: /tmp/slurm_up_apt.$$.log)"
    fi
    rm -f "/tmp/slurm_up_apt.$$.log"
fi

# ------------------------------------------------------------------ helpers
# alive PIDFILE COMM: the pid file names a live process with that command name.
alive() {
    local pid
    [ -s "$1" ] || return 1
    pid=$(cat "$1")
    [ -r "/proc/$pid/comm" ] && [ "$(cat "/proc/$pid/comm")" = "$2" ]
}
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
wait_for() { # wait_for SECONDS WHAT COMMAND...
    local n=$1 what=$2
    shift 2
    for _ in $(seq "$n"); do "$@" >/dev/null 2>&1 && return 0; sleep 1; done
    die "timed out after ${n}s waiting for $what (logs: $S/log)"
}
db() { mariadb --no-defaults --socket="$S/mysqld.sock" -uroot "$@"; }

OURS="slurmd:slurmd slurmctld:slurmctld slurmdbd:slurmdbd mariadb:mariadbd"
all_alive=1
any_alive=0
for entry in $OURS; do
    if alive "$S/${entry%%:*}.pid" "${entry##*:}"; then any_alive=1; else all_alive=0; fi
done
if [ $all_alive = 1 ] && timeout 10 sinfo -h >/dev/null 2>&1; then
    log "already up (scratch $S)"
    sinfo
    exit 0
fi
if [ $any_alive = 1 ]; then
    log "partly up: stopping the rest first"
    SLURM_SCRATCH="$S" bash "$HERE/slurm_down.sh"
fi

# Never overwrite a Slurm that is not ours, never run beside one.
if [ -f $C/slurm.conf ]; then
    first=$(head -n 1 $C/slurm.conf)
    case $first in
        "# written by repaudit .ci/slurm_up.sh; scratch="*)
            other=${first##*scratch=}
            if [ "$other" != "$S" ] && alive "$other/slurmctld.pid" slurmctld; then
                skip "a CI cluster from $other is running; stop it: SLURM_SCRATCH=$other $HERE/slurm_down.sh"
            fi
            ;;
        *) skip "$C/slurm.conf exists and was not written by this script; not touching it" ;;
    esac
fi
for port in 6817 6818 6819 "$DBPORT"; do
    port_open "$port" && skip "port $port on 127.0.0.1 is in use by a process that is not ours"
done

# ------------------------------------------------------------------ configuration
mkdir -p "$S"/{state,spool,log} $C
H=$(hostname -s)
GRES=""
if [ "$GPUS" -gt 0 ]; then GRES=" Gres=gpu:$GPUS"; fi
{
    echo "$MARK"
    cat <<CONF
ClusterName=ci
SlurmctldHost=$H(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$S/state
SlurmdSpoolDir=$S/spool
SlurmctldPidFile=$S/slurmctld.pid
SlurmdPidFile=$S/slurmd.pid
SlurmctldLogFile=$S/log/slurmctld.log
SlurmdLogFile=$S/log/slurmd.log
# no cgroups (no systemd, sandboxed kernels): nothing is enforced
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
# record GPUs in ReqTRES/AllocTRES (sacct), as GPU clusters do
AccountingStorageTRES=gres/gpu
# keep the --comment (rule_<name>) the Snakemake plugin sets, so sacct can show it
AccountingStoreFlags=job_comment
JobCompType=jobcomp/filetxt
JobCompLoc=$S/log/jobcomp.log
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
# finished jobs stay visible to squeue for 10 min (a fallback for status polling)
MinJobAge=600
ReturnToService=2
MpiDefault=none
# the node below is declared larger than the machine: trust the declaration
SlurmdParameters=config_overrides
GresTypes=gpu
NodeName=$H NodeAddr=127.0.0.1 CPUs=$CPUS RealMemory=$MEM$GRES State=UNKNOWN
PartitionName=debug Nodes=$H Default=YES MaxTime=INFINITE State=UP
CONF
} >$C/slurm.conf
# Fake GPUs: a gres needs a device file, /dev/null and /dev/zero serve (no count-only lines:
# the node would drain with "gres/gpu count reported lower than configured").
: >$C/gres.conf
if [ "$GPUS" -ge 1 ]; then echo "NodeName=$H Name=gpu File=/dev/null" >>$C/gres.conf; fi
if [ "$GPUS" -ge 2 ]; then echo "NodeName=$H Name=gpu File=/dev/zero" >>$C/gres.conf; fi
{
    echo "$MARK"
    cat <<CONF
AuthType=auth/munge
DbdHost=localhost
SlurmUser=root
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$DBPORT
StorageUser=slurm
StoragePass=ci
StorageLoc=slurm_acct_db
PidFile=$S/slurmdbd.pid
LogFile=$S/log/slurmdbd.log
CONF
} >$C/slurmdbd.conf
chmod 600 $C/slurmdbd.conf

# ------------------------------------------------------------------ munge
# Slurm talks to munged through its default socket, so there is one munged per machine: reuse a
# working one (not ours, never stopped by slurm_down), else start one and record its pid.
if timeout 10 munge -n </dev/null 2>/dev/null | timeout 10 unmunge >/dev/null 2>&1; then
    log "using the running munged"
else
    mkdir -p /run/munge
    chown munge:munge /run/munge
    rm -f /run/munge/munged.pid # stale (no munged answers): must not be mistaken for the new one
    runuser -u munge -- munged --force </dev/null >>"$S/log/munged.out" 2>&1
    wait_for 15 munged test -s /run/munge/munged.pid
    cp /run/munge/munged.pid "$S/munged.pid"
    wait_for 15 munge sh -c 'munge -n </dev/null | unmunge'
fi

# ------------------------------------------------------------------ private mariadb for slurmdbd
if [ ! -d "$S/mysql/mysql" ]; then
    mariadb-install-db --no-defaults --user=root --datadir="$S/mysql" \
        --auth-root-authentication-method=socket --skip-test-db \
        >"$S/log/mariadb-install.log" 2>&1 || die "mariadb-install-db failed: $S/log/mariadb-install.log"
fi
mariadbd --no-defaults --user=root --datadir="$S/mysql" --socket="$S/mysqld.sock" \
    --port="$DBPORT" --bind-address=127.0.0.1 --pid-file="$S/mariadb.pid" \
    --log-error="$S/log/mariadb.err" </dev/null >/dev/null 2>&1 &
wait_for 60 mariadbd db -e "select 1"
db -e "CREATE OR REPLACE USER 'slurm'@'127.0.0.1' IDENTIFIED BY 'ci';
       CREATE OR REPLACE USER 'slurm'@'localhost' IDENTIFIED BY 'ci';
       GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';
       GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';"

# ------------------------------------------------------------------ slurm daemons
# slurmctld exits on a fresh state dir if slurmdbd is not answering yet: wait for its port.
slurmdbd </dev/null >>"$S/log/slurmdbd.out" 2>&1
wait_for 60 "slurmdbd (port 6819)" port_open 6819
# account `ci` for root, so `-A ci` validates (sacctmgr) like on a real cluster
timeout 30 sacctmgr -i add cluster ci >/dev/null 2>&1 || true
timeout 30 sacctmgr -i add account ci Description=ci Organization=ci >/dev/null 2>&1 || true
timeout 30 sacctmgr -i add user root Account=ci DefaultAccount=ci >/dev/null 2>&1 || true
slurmctld </dev/null >>"$S/log/slurmctld.out" 2>&1
wait_for 30 "slurmctld (port 6817)" port_open 6817
slurmd </dev/null >>"$S/log/slurmd.out" 2>&1
node_ready() {
    local state
    state=$(timeout 10 sinfo -h -N -o %t | head -n 1)
    case $state in
        idle | mix | alloc) return 0 ;;
        drain* | drng | inval) timeout 10 scontrol update nodename="$H" state=resume ;;
    esac
    return 1
}
wait_for 60 "the node to become idle" node_ready

# ------------------------------------------------------------------ smoke test
# One job end to end, visible to sacct: the plugin's status polling depends on exactly this.
jid=$(timeout 30 sbatch --parsable -A ci -p debug -t 1 -o "$S/log/smoke-%j.out" --wrap "srun true")
sacct_state() { timeout 10 sacct -X -n -P -j "$jid" -o State | grep -qx COMPLETED; }
wait_for 60 "smoke job $jid to show as COMPLETED in sacct" sacct_state
log "up: scratch $S, node $H (CPUs=$CPUS RealMemory=$MEM gpu=$GPUS), account ci, partition debug"
sinfo
