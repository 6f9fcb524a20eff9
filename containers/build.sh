#!/usr/bin/env bash
# Build the pinned per-stage images with podman and record their digests in containers/lock.yaml.
#
#   containers/build.sh                 build (or reuse) base + stats image, write containers/lock.yaml
#   containers/build.sh --check         build (or reuse), then fail if the digests differ from the lock:
#                                       exit 1 if the sources changed since the lock was written (stale),
#                                       exit 3 if the sources are the same but the image is not (upstream
#                                       Debian packages or wheels changed)
#   containers/build.sh --lock FILE     write (or --check) FILE instead of containers/lock.yaml
#   containers/build.sh --rebuild-base  make the Debian base again with debootstrap (otherwise reused)
#   containers/build.sh --no-cache      build the stats image without podman's layer cache
#   containers/build.sh --relock        first re-resolve the dependency closure of requirements.lock (its
#                                       second part) from its hand-edited pins and pyproject's ranges
#
# Images (local podman storage only; no registry is used or needed):
#   localhost/recastflow-base:bookworm  Debian bookworm minbase from debootstrap, one normalised layer
#   localhost/recastflow-stats:latest   python3.11 venv with recastflow's runtime dependencies at the
#                                       versions of requirements.lock (pip constraints), then recastflow
#
# Both builds use `podman build --timestamp $SOURCE_DATE_EPOCH`, so creation times do not enter the
# digests: the same base rootfs and the same build context give the same image digest again.
# Needs podman, runc and debootstrap (containers/install-podman.sh) and root.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(dirname "$here")"
export CONTAINERS_CONF="${CONTAINERS_CONF:-$here/containers.conf}"
export SOURCE_DATE_EPOCH="${SOURCE_DATE_EPOCH:-1735689600}"   # 2025-01-01T00:00:00Z, fixed on purpose
BASE_IMAGE=localhost/recastflow-base:bookworm
STATS_IMAGE=localhost/recastflow-stats:latest
STATS_REPO=localhost/recastflow-stats
STATS_STAGES=(fetch generate emulate select reweight patch limits check report archive adaptive)   # workflow stages that run in the stats image

lock="$here/lock.yaml"
check=0 rebuild_base=0 relock=0 cache_opts=()
while (($#)); do
    case "$1" in
        --lock) lock="$(realpath -m "$2")"; shift 2 ;;
        --check) check=1; shift ;;
        --rebuild-base) rebuild_base=1; shift ;;
        --relock) relock=1; shift ;;
        --no-cache) cache_opts=(--no-cache); shift ;;
        -h|--help) sed -n '2,22p' "$0"; exit 0 ;;
        *) echo "build.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done

say() { echo "build.sh: $*" >&2; }
for tool in podman; do
    command -v "$tool" >/dev/null || { say "$tool not found: run containers/install-podman.sh"; exit 1; }
done
# The host's CA bundle, mounted read-only into the steps that run pip (not into the image): needed
# where PyPI is reached through a TLS-intercepting proxy, harmless elsewhere.
ca_bundle="${PIP_CERT:-${SSL_CERT_FILE:-/etc/ssl/certs/ca-certificates.crt}}"
ca_opts=()
[[ -s $ca_bundle ]] && ca_opts=(-v "$ca_bundle:/run/host-ca/ca.crt:ro")
work="$(mktemp -d "${TMPDIR:-/var/tmp}/recastflow-build.XXXXXX")"
unmount_under() {   # debootstrap may leave /proc, /sys or a bound /dev mounted in the rootfs on failure
    local m
    for m in $(findmnt -rn -o TARGET 2>/dev/null | grep -F "$1/" | sort -r || true); do umount -l "$m" || true; done
    return 0
}
cleanup() { local rc=$?; unmount_under "$work"; rm -rf "$work" || true; exit "$rc"; }
trap cleanup EXIT

# --- the Debian mirror this machine already uses (DEBIAN_MIRROR / DEBIAN_SECURITY override) ---
apt_uri() {   # first URI of the host's apt sources whose suites match $1 (a grep -E pattern)
    local f
    for f in /etc/apt/sources.list.d/*.sources; do
        [[ -e $f ]] || continue
        awk -v pat="$1" 'BEGIN{RS=""} $0 ~ "Suites:[^\n]*" pat {for(i=1;i<=NF;i++) if($i=="URIs:"){print $(i+1); exit}}' "$f"
    done
    cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null | awk -v pat="^$1" '$1=="deb" && $3 ~ pat {print $2}'
    return 0
}

# --- base image -------------------------------------------------------------------------------
if ((rebuild_base)) || ! podman image exists "$BASE_IMAGE"; then
    command -v debootstrap >/dev/null || { say "debootstrap not found: run containers/install-podman.sh"; exit 1; }
    mirror="${DEBIAN_MIRROR:-$(apt_uri 'bookworm( |$)' | sed -n 1p)}"
    mirror="${mirror:-http://deb.debian.org/debian}"
    security="${DEBIAN_SECURITY:-$(apt_uri 'bookworm-security' | sed -n 1p)}"
    security="${security:-http://deb.debian.org/debian-security}"
    say "debootstrap bookworm (minbase) from $mirror"
    t0=$SECONDS
    rootfs="$work/rootfs"
    debootstrap --variant=minbase bookworm "$rootfs" "$mirror" >"$work/debootstrap.log" 2>&1 \
        || { tail -n 30 "$work/debootstrap.log" >&2; say "debootstrap failed"; exit 1; }
    unmount_under "$rootfs"
    # Normalise: nothing that depends on the build machine or the build time stays in the image.
    printf 'deb %s bookworm main\ndeb %s bookworm-updates main\ndeb %s bookworm-security main\n' \
        "$mirror" "$mirror" "$security" >"$rootfs/etc/apt/sources.list"
    rm -rf "$rootfs"/dev/* "$rootfs"/proc/* "$rootfs"/sys/* "$rootfs"/run/* "$rootfs"/tmp/* \
        "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/* "$rootfs"/var/log/* \
        "$rootfs"/var/cache/ldconfig/aux-cache "$rootfs"/var/lib/dpkg/*-old "$rootfs"/var/cache/debconf/*-old \
        "$rootfs"/etc/resolv.conf "$rootfs"/etc/hostname
    : >"$rootfs/etc/hosts"
    day=$((SOURCE_DATE_EPOCH / 86400))   # /etc/shadow's "last password change" is the build day
    sed -i -E "s/^([^:]*:[^:]*:)[0-9]+:/\1$day:/" "$rootfs/etc/shadow"
    [[ -e $rootfs/etc/shadow- ]] && sed -i -E "s/^([^:]*:[^:]*:)[0-9]+:/\1$day:/" "$rootfs/etc/shadow-"
    mkdir -p "$work/base"
    tar --sort=name --numeric-owner --mtime="@$SOURCE_DATE_EPOCH" --format=gnu \
        -C "$rootfs" -cf "$work/base/rootfs.tar" .
    rm -rf "$rootfs"
    say "rootfs.tar sha256 $(sha256sum "$work/base/rootfs.tar" | cut -c1-64)"
    podman build -q --network=none --timestamp "$SOURCE_DATE_EPOCH" --identity-label=false \
        -f "$here/base/Containerfile" -t "$BASE_IMAGE" "$work/base" >/dev/null
    rm -f "$work/base/rootfs.tar"
    say "base image $BASE_IMAGE built in $((SECONDS - t0)) s"
else
    say "reusing base image $BASE_IMAGE"
fi
base_digest="$(podman image inspect --format '{{.Digest}}' "$BASE_IMAGE")"
base_ref="localhost/recastflow-base@$base_digest"

# --- requirements.lock: the exact versions (repository root; make and .ci/run install from it too) -----
# Its first part (up to the marker line) is edited by hand; --relock resolves the full closure of those pins
# together with pyproject's ranges, with pip in a base container (Python 3.11 of Debian bookworm, the image's),
# keeping the previous closure's pins where they still fit, and rewrites the second part.
reqlock="$repo/requirements.lock"
[[ -s $reqlock ]] || { say "$reqlock is missing"; exit 1; }
if ((relock)); then
    say "resolving the dependency closure of $reqlock (pip in a base container, network=host)"
    mkdir -p "$work/relock"
    python3 - split "$reqlock" "$repo/pyproject.toml" "$work/relock" <<'PY'
import re, sys, tomllib
from pathlib import Path
MARKER = "# ---- dependency closure:"
_, lock, pyproject, out = sys.argv[1:]
text = Path(lock).read_text()
if MARKER not in text:
    sys.exit(f"relock: {lock} has no line starting with {MARKER!r}")
head, closure = text.split(MARKER, 1)
pins = lambda part: [ln.split("#", 1)[0].strip() for ln in part.splitlines() if ln.split("#", 1)[0].strip()]
project = tomllib.loads(Path(pyproject).read_text())["project"]
ranges = [*project["dependencies"], *(r for extra in project["optional-dependencies"].values() for r in extra)]
Path(out, "direct.txt").write_text("\n".join([*pins(head), *ranges]) + "\n")
Path(out, "closure.txt").write_text("\n".join(pins(closure.split("\n", 1)[1] if "\n" in closure else "")) + "\n")
PY
    podman run --rm --network=host "${ca_opts[@]}" -v "$work/relock:/relock" "$base_ref" bash -ec '
        if [ -s /run/host-ca/ca.crt ]; then export PIP_CERT=/run/host-ca/ca.crt; fi
        apt-get update -qq && apt-get install -y -qq --no-install-recommends python3 python3-venv ca-certificates >/dev/null
        python3 -m venv /v && /v/bin/pip install -q --disable-pip-version-check "$(grep -m1 "^pip==" /relock/direct.txt)"
        resolve() { /v/bin/pip install -q --disable-pip-version-check --dry-run --ignore-installed \
                        --report /relock/report.json -r /relock/direct.txt "$@"; }
        resolve -c /relock/closure.txt \
            || { echo "relock: the previous closure does not fit the pins any more; resolving it anew" >&2; resolve; }'
    python3 - write "$reqlock" "$work/relock/report.json" >"$work/relock/new.lock" <<'PY'
import json, re, sys
from pathlib import Path
MARKER = "# ---- dependency closure:"
_, lock, report = sys.argv[1:]
norm = lambda name: re.sub(r"[-_.]+", "-", name).lower()
text = Path(lock).read_text()
head, rest = text.split(MARKER, 1)
marker_line = MARKER + rest.split("\n", 1)[0]
hand = {}
for ln in head.splitlines():
    ln = ln.split("#", 1)[0].strip()
    if ln:
        name, version = ln.split("==")
        hand[norm(name)] = version
resolved = {norm(i["metadata"]["name"]): (i["metadata"]["name"], i["metadata"]["version"])
            for i in json.loads(Path(report).read_text())["install"]}
got = {n: version for n, (_, version) in resolved.items()}
wrong = {n: (v, got.get(n)) for n, v in hand.items() if got.get(n) != v}
if wrong:
    sys.exit(f"relock: the resolution does not hold the hand-edited pins: {wrong}")
closure = sorted((nv for n, nv in resolved.items() if n not in hand), key=lambda nv: norm(nv[0]))
sys.stdout.write(head + marker_line + "\n" + "".join(f"{n}=={v}\n" for n, v in closure))
PY
    if cmp -s "$reqlock" "$work/relock/new.lock"; then
        say "$reqlock unchanged"
    else
        diff -u "$reqlock" "$work/relock/new.lock" >&2 || true
        cp "$work/relock/new.lock" "$reqlock"
        say "wrote $reqlock ($(grep -c '==' "$reqlock") pins)"
    fi
fi

# --- stats image -------------------------------------------------------------------------------
ctx="$work/stats"
mkdir -p "$ctx/src/workflow"
cp "$reqlock" "$here/stats/verify_pins.py" "$ctx/"
cp "$repo/pyproject.toml" "$ctx/src/"
# the runtime requirements (pyproject's ranges) on their own, so that the layer installing them is rebuilt only
# when they or the lock change, not with every edit of the package or of pyproject's tool settings
python3 -c 'import sys, tomllib; print("\n".join(tomllib.load(open(sys.argv[1], "rb"))["project"]["dependencies"]))' \
    "$repo/pyproject.toml" >"$ctx/runtime.txt"
# pyproject's readme: a stub, so that editing the README does not change the image
echo "recastflow: see the README of the repository." >"$ctx/src/README.md"
tar -C "$repo/workflow" --exclude=__pycache__ --exclude='*.pyc' -cf - recastflow | tar -C "$ctx/src/workflow" -xf -
context_sha="$( (cd "$ctx" && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum;
                 sha256sum <"$here/stats/Containerfile") | sha256sum | cut -c1-64)"
t0=$SECONDS
say "building $STATS_IMAGE from $base_ref"
podman build -q --network=host --timestamp "$SOURCE_DATE_EPOCH" --identity-label=false "${ca_opts[@]}" "${cache_opts[@]}" \
    --build-arg "BASE=$base_ref" --build-arg "SOURCE_DATE_EPOCH=$SOURCE_DATE_EPOCH" \
    -f "$here/stats/Containerfile" -t "$STATS_IMAGE" "$ctx" >/dev/null
stats_digest="$(podman image inspect --format '{{.Digest}}' "$STATS_IMAGE")"
stats_ref="$STATS_REPO@$stats_digest"
podman image exists "$stats_ref" || { say "podman cannot resolve $stats_ref"; exit 1; }
say "stats image $stats_ref ($((SECONDS - t0)) s)"

# --- the lock ----------------------------------------------------------------------------------
new="$work/lock.yaml"
{
    cat <<EOF
# Per-stage container images, pinned by digest. Written by containers/build.sh: do not edit by hand.
#
# A digest here is the manifest digest podman computed for the image containers/build.sh built
# ('podman image inspect --format {{.Digest}}'); no registry holds these images. Each machine builds
# them itself; the builds are timestamp-free (podman build --timestamp), so the digest changes only when
# the build inputs change: containers/stats (Containerfile, verify_pins.py), requirements.lock, pyproject.toml,
# workflow/recastflow, or the Debian packages the base and python3 come from.
# 'containers/build.sh --check' rebuilds and fails if the result differs from this file
# (exit 1: sources changed since it was written; exit 3: same sources, Debian/PyPI files changed).
# The workflow (workflow/rules/common.smk) refuses a stage that is missing or not pinned by @sha256.
stages:
EOF
    for s in "${STATS_STAGES[@]}"; do echo "  $s: $stats_ref"; done
    cat <<EOF
images:
  stats:
    reference: $stats_ref
    base: $base_ref
    context_sha256: $context_sha
EOF
} >"$new"

if ((check)); then
    if [[ -e $lock ]] && diff -u <(grep -v '^#' "$lock") <(grep -v '^#' "$new") >"$work/lock.diff"; then
        say "lock $lock matches the images built here"
    else
        cat "$work/lock.diff" >&2 2>/dev/null || true
        if [[ -e $lock ]] && grep -qF "context_sha256: $context_sha" "$lock"; then
            # same sources, different image: the Debian or PyPI files changed (exit 3)
            say "same build inputs as $lock but a different image: Debian packages or wheels changed upstream"
            exit 3
        fi
        say "$lock is stale: the build inputs changed since it was written; run containers/build.sh"
        exit 1
    fi
else
    if [[ -e $lock ]] && cmp -s "$lock" "$new"; then
        say "lock $lock unchanged"
    else
        mkdir -p "$(dirname "$lock")"
        cp "$new" "$lock"
        say "wrote $lock"
    fi
fi
echo "$stats_ref"
