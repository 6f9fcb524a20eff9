#!/usr/bin/env bash
# Install what the pinned images need on a fresh Debian 12 machine (root): podman, runc, debootstrap.
# Idempotent: does nothing when the tools are already there. Afterwards `podman info` is checked with
# containers/containers.conf (runc, cgroupfs, file events, ulimits that a restricted host allows).
#
#   bash containers/install-podman.sh
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
export CONTAINERS_CONF="${CONTAINERS_CONF:-$here/containers.conf}"

missing=()
for tool in podman runc debootstrap; do
    command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
if ((${#missing[@]})); then
    if [[ $(id -u) -ne 0 ]]; then
        echo "install-podman.sh: ${missing[*]} missing and not root; install them as root (apt-get install podman runc debootstrap)" >&2
        exit 1
    fi
    echo "install-podman.sh: installing ${missing[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq -o DPkg::Lock::Timeout=900
    apt-get install -y -qq -o DPkg::Lock::Timeout=900 --no-install-recommends podman runc debootstrap ca-certificates >/dev/null
fi

if ! podman info --format '{{.Host.OCIRuntime.Name}} {{.Store.GraphDriverName}}' >/dev/null 2>&1; then
    echo "install-podman.sh: podman is installed but 'podman info' fails with CONTAINERS_CONF=$CONTAINERS_CONF:" >&2
    podman info >&2 || true
    exit 1
fi
echo "install-podman.sh: $(podman --version), runtime/storage: $(podman info --format '{{.Host.OCIRuntime.Name}} {{.Store.GraphDriverName}}')" >&2
