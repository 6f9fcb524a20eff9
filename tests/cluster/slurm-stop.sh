#!/usr/bin/env bash
# Stop the cluster that tests/cluster/slurm-start.sh started from SCRATCH: cancel its jobs, stop slurmd,
# slurmctld and munged (by their pid files), and remove /etc/slurm/slurm.conf if the start script
# created it. Idempotent: running it again, or on a half-started cluster, is fine. SCRATCH is kept
# (it holds the logs); delete it yourself.
#
#   bash tests/cluster/slurm-stop.sh SCRATCH
set -uo pipefail
export PATH="$PATH:/usr/sbin:/sbin"   # the daemons live in sbin, which a non-login PATH may lack

[ $# -eq 1 ] || { echo "usage: $0 SCRATCH" >&2; exit 2; }
SCRATCH="$1"
if [ ! -d "$SCRATCH" ]; then
    echo "slurm-stop: $SCRATCH does not exist; nothing to stop" >&2
    exit 0
fi
SCRATCH="$(cd "$SCRATCH" && pwd)"
CONF="$SCRATCH/etc/slurm.conf"

alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

# stop pid-file process $1 with SIGTERM, then SIGKILL after 10 s
stop_pidfile() {
    local pidfile="$1" name="$2" pid
    alive "$pidfile" || { rm -f "$pidfile"; return 0; }
    pid="$(cat "$pidfile")"
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then
        echo "slurm-stop: $name (pid $pid) ignored SIGTERM; killing it" >&2
        kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$pidfile"
}

# cancel whatever is still queued or running, while slurmctld is there to do it
if alive "$SCRATCH/slurmctld.pid" && [ -f "$CONF" ]; then
    jobs="$(SLURM_CONF="$CONF" timeout 10 squeue -h -o %i 2>/dev/null || true)"
    if [ -n "$jobs" ]; then
        # shellcheck disable=SC2086
        SLURM_CONF="$CONF" timeout 10 scancel $jobs 2>/dev/null || true
        sleep 1
    fi
fi

stop_pidfile "$SCRATCH/slurmd.pid" slurmd
stop_pidfile "$SCRATCH/slurmctld.pid" slurmctld
stop_pidfile "$SCRATCH/munge/munged.pid" munged
rm -f "$SCRATCH/munge/munge.socket.2" "$SCRATCH/munge/munge.socket.2.lock"

marker="$SCRATCH/created-etc-symlink"
if [ -f "$marker" ]; then
    link="$(cat "$marker")"
    if [ -L "$link" ] && [ "$(readlink "$link")" = "$CONF" ]; then
        rm -f "$link"
    fi
    rm -f "$marker"
fi
echo "slurm-stop: stopped the cluster of $SCRATCH" >&2
exit 0
