#!/usr/bin/env bash
# Install a single-node Slurm (controller, node daemon, client commands) and munge on Debian 12,
# for tests/cluster/slurm-start.sh and tests/test_slurm.py. Does nothing if all are already there.
# Needs root (or sudo); non-interactive; does not start any daemon (the start script does that).
set -euo pipefail
export PATH="$PATH:/usr/sbin:/sbin"   # the daemons live in sbin, which a non-login PATH may lack

needed=(sbatch squeue sinfo slurmctld slurmd munged)
missing=()
for cmd in "${needed[@]}"; do
    command -v "$cmd" >/dev/null 2>&1 || missing+=("$cmd")
done
if [ ${#missing[@]} -eq 0 ]; then
    echo "install-slurm: already installed (slurm-wlm $(dpkg-query -W -f='${Version}' slurm-wlm 2>/dev/null || echo "?"))"
    exit 0
fi
echo "install-slurm: missing ${missing[*]}; installing slurm-wlm and munge"

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || { echo "install-slurm: need root or sudo" >&2; exit 1; }
    SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get -o DPkg::Lock::Timeout=600 update -qq
# slurm-wlm: slurmctld + slurmd + client commands (sbatch, squeue, sinfo, srun, scancel);
# munge: the authentication daemon Slurm's auth/munge plugin talks to.
$SUDO apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends slurm-wlm munge >/dev/null

for cmd in "${needed[@]}"; do
    command -v "$cmd" >/dev/null 2>&1 || { echo "install-slurm: $cmd still missing after install" >&2; exit 1; }
done
echo "install-slurm: installed (slurm-wlm $(dpkg-query -W -f='${Version}' slurm-wlm 2>/dev/null || echo "?"))"
