"""Fail an image build unless every installed distribution is at its locked version.

usage: verify_pins.py requirements.lock PROJECT

Every distribution installed in this interpreter's environment, except PROJECT itself, must be named by a
`name==version` line of the lock and installed at that version (nothing unlocked, nothing drifted), and
every runtime requirement of PROJECT (its Requires-Dist without an extra) must be installed and, where
`packaging` is there to read the range, within it.
"""

import re
import sys
from importlib.metadata import PackageNotFoundError, distribution, distributions


def norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pins(lines):
    out = {}
    for line in lines:
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        m = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9._-]*)\s*==\s*([^\s;]+)", line)
        if not m:
            sys.exit(f"verify_pins: not an exact pin: {line!r}")
        out[norm(m[1])] = m[2]
    return out


def runtime_requirements(project: str):
    """(name, specifier or None) of the project's requirements that apply without extras."""
    out = []
    for text in distribution(project).requires or []:
        try:
            from packaging.requirements import Requirement
        except ImportError:  # no range check without packaging; the name still has to be installed
            if "extra" not in text.partition(";")[2]:
                out.append((re.match(r"[A-Za-z0-9._-]+", text)[0], None))
            continue
        req = Requirement(text)
        if req.marker is None or req.marker.evaluate({"extra": ""}):
            out.append((req.name, req.specifier))
    return out


def main(lock_path: str, project: str) -> None:
    with open(lock_path) as f:
        lock = pins(f)
    installed = {norm(d.metadata["Name"]): d.version for d in distributions()}
    errors = []
    for name, have in sorted(installed.items()):
        if name != norm(project) and lock.get(name) != have:
            errors.append(f"{name}: installed {have}, locked {lock.get(name)}")
    try:
        requirements = runtime_requirements(project)
    except PackageNotFoundError:
        sys.exit(f"verify_pins: {project} is not installed")
    for name, spec in requirements:
        have = installed.get(norm(name))
        if have is None or (spec is not None and not spec.contains(have, prereleases=True)):
            errors.append(f"{project} requires {name}{spec or ''}, installed {have}")
    if errors:
        sys.exit("verify_pins: " + "; ".join(errors))
    print(f"verify_pins: {len(installed) - 1} installed distributions at their locked versions "
          f"({len(lock)} locked), {len(requirements)} requirements of {project} met")


if __name__ == "__main__":
    main(*sys.argv[1:])
