#!/usr/bin/env bash
# Start a single-node Slurm cluster on localhost (munged + slurmctld + slurmd), without systemd,
# for tests/test_slurm.py and for trying workflow/profiles/slurm by hand.
#
#   bash tests/cluster/slurm-start.sh [SCRATCH]   # prints SCRATCH on its last line
#   bash tests/cluster/slurm-stop.sh SCRATCH
#
# Everything (config, munge key/socket, state, spool, logs, pid files) lives in SCRATCH (default: a new
# mktemp folder), except one thing: /etc/slurm/slurm.conf must point at the config, because the job
# step that snakemake-executor-plugin-slurm starts inside a job drops SLURM_CONF. If that path does
# not exist, this script creates it as a symlink to SCRATCH/etc/slurm.conf (and records that in
# SCRATCH/created-etc-symlink so that the stop script removes it). If it exists and is not ours,
# the script refuses: another Slurm configuration is in use on this machine.
# Needs root (slurmd runs jobs as their submitting user) and tests/cluster/install-slurm.sh.
# Slurm 22.05 (Debian 12). No accounting (no slurmdbd): use `squeue`, not `sacct`.
set -euo pipefail
export PATH="$PATH:/usr/sbin:/sbin"   # the daemons live in sbin, which a non-login PATH may lack

HERE="$(cd "$(dirname "$0")" && pwd)"
ETC_CONF=/etc/slurm/slurm.conf
WAIT_SECONDS="${SLURM_START_TIMEOUT:-60}"

die() { echo "slurm-start: error: $*" >&2; exit 1; }

for cmd in munged mungekey slurmctld slurmd sinfo scontrol; do
    command -v "$cmd" >/dev/null 2>&1 || die "$cmd not found; run tests/cluster/install-slurm.sh first"
done
[ "$(id -u)" -eq 0 ] || die "must run as root (slurmd and the /etc/slurm symlink need it)"

SCRATCH="${1:-}"
if [ -z "$SCRATCH" ]; then
    SCRATCH="$(mktemp -d "${TMPDIR:-/tmp}/slurm-cluster.XXXXXX")"
fi
mkdir -p "$SCRATCH"
SCRATCH="$(cd "$SCRATCH" && pwd)"
chmod 0755 "$SCRATCH"   # job steps of non-root users must reach the config; munge checks its own folder
CONF="$SCRATCH/etc/slurm.conf"

if [ -f "$SCRATCH/slurmctld.pid" ] && kill -0 "$(cat "$SCRATCH/slurmctld.pid")" 2>/dev/null; then
    die "a cluster is already running from $SCRATCH (stop it with slurm-stop.sh $SCRATCH)"
fi

# /etc/slurm/slurm.conf: ours, free, or a dangling symlink left by a killed run (replaced).
if [ -L "$ETC_CONF" ] && [ "$(readlink "$ETC_CONF")" = "$CONF" ]; then
    :
elif [ -L "$ETC_CONF" ] && [ ! -e "$ETC_CONF" ]; then
    echo "slurm-start: replacing dangling symlink $ETC_CONF -> $(readlink "$ETC_CONF")" >&2
    rm -f "$ETC_CONF"
elif [ -e "$ETC_CONF" ] || [ -L "$ETC_CONF" ]; then
    die "$ETC_CONF already exists ($(readlink -f "$ETC_CONF")): another Slurm configuration is in use; stop that cluster first"
fi
for port in 6817 6818; do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
        die "port $port on 127.0.0.1 is in use: another slurmctld/slurmd is running"
    fi
done

mkdir -p "$SCRATCH"/{etc,munge,state,spool,log,run}
chmod 0700 "$SCRATCH/munge"

# --- munge: own key, socket, log, pid and seed files -------------------------------------------
MUNGE_SOCKET="$SCRATCH/munge/munge.socket.2"
[ -f "$SCRATCH/munge/munge.key" ] || mungekey --create --keyfile="$SCRATCH/munge/munge.key" >/dev/null 2>&1 \
    || dd if=/dev/urandom of="$SCRATCH/munge/munge.key" bs=1024 count=1 status=none
chmod 0400 "$SCRATCH/munge/munge.key"
munged --force \
    --socket="$MUNGE_SOCKET" \
    --key-file="$SCRATCH/munge/munge.key" \
    --log-file="$SCRATCH/log/munged.log" \
    --pid-file="$SCRATCH/munge/munged.pid" \
    --seed-file="$SCRATCH/munge/munged.seed" \
    || die "munged did not start; see $SCRATCH/log/munged.log"
for _ in $(seq 50); do [ -S "$MUNGE_SOCKET" ] && break; sleep 0.1; done
[ -S "$MUNGE_SOCKET" ] || die "munge socket $MUNGE_SOCKET did not appear; see $SCRATCH/log/munged.log"

# --- slurm.conf ----------------------------------------------------------------------------------
# GNU nproc obeys OMP_NUM_THREADS (the tests set it to 1): ignore it, count the usable cores
CPUS="$(env -u OMP_NUM_THREADS -u OMP_THREAD_LIMIT nproc)"
MEM_MB="$(awk '/^MemTotal:/ {printf "%d", $2 / 1024 - 1024}' /proc/meminfo)"
[ "$MEM_MB" -gt 512 ] || MEM_MB=512
cat >"$CONF" <<EOF
# Written by tests/cluster/slurm-start.sh: a one-node test cluster on localhost.
ClusterName=recastflow-test
SlurmctldHost=localhost(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$MUNGE_SOCKET
CredType=cred/munge
StateSaveLocation=$SCRATCH/state
SlurmdSpoolDir=$SCRATCH/spool
SlurmctldPidFile=$SCRATCH/slurmctld.pid
SlurmdPidFile=$SCRATCH/slurmd.pid
SlurmctldLogFile=$SCRATCH/log/slurmctld.log
SlurmdLogFile=$SCRATCH/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
# no cgroups and no systemd here
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
# no slurmdbd: finished jobs stay visible to squeue for MinJobAge seconds
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
MinJobAge=600
ReturnToService=2
SchedulerType=sched/backfill
# start jobs without delay: schedule at submit time (default: batched up to 3 s later) and run the
# main and backfill loops every 2 s (defaults 60 s and 30 s); cheap on a one-node cluster
SchedulerParameters=batch_sched_delay=0,sched_interval=2,bf_interval=2
MailProg=/bin/true
NodeName=localhost NodeAddr=127.0.0.1 CPUs=$CPUS RealMemory=$MEM_MB State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
EOF

if [ ! -e "$ETC_CONF" ]; then
    mkdir -p "$(dirname "$ETC_CONF")"
    ln -s "$CONF" "$ETC_CONF"
    echo "$ETC_CONF" >"$SCRATCH/created-etc-symlink"
fi
export SLURM_CONF="$CONF"

# --- daemons -------------------------------------------------------------------------------------
# -c: a fresh cluster (ignore any saved state); both daemonise and write their pid files.
slurmctld -c -f "$CONF" || die "slurmctld did not start; see $SCRATCH/log/slurmctld.log"
slurmd -c -f "$CONF" -N localhost || die "slurmd did not start; see $SCRATCH/log/slurmd.log"

# --- wait until the node is idle (bounded) ---------------------------------------------------------
state=""
for _ in $(seq $((WAIT_SECONDS * 2))); do
    state="$(sinfo -h -n localhost -o %t 2>/dev/null | head -1 || true)"
    [ "$state" = "idle" ] && break
    sleep 0.5
done
if [ "$state" != "idle" ]; then
    echo "slurm-start: error: node localhost not idle after ${WAIT_SECONDS}s (state: '${state:-none}')" >&2
    tail -n 20 "$SCRATCH/log/slurmctld.log" "$SCRATCH/log/slurmd.log" >&2 2>/dev/null || true
    bash "$HERE/slurm-stop.sh" "$SCRATCH" >&2 || true
    exit 1
fi
echo "slurm-start: node localhost idle (${CPUS} CPUs, ${MEM_MB} MB); config $CONF" >&2
echo "$SCRATCH"
