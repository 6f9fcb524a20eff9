"""Fail an image build unless the installed distributions are exactly the pinned ones.

usage: verify_pins.py requirements.lock pyproject.toml

Every `name==version` line of the lock must be installed at that version, and every
`name==version` dependency of pyproject.toml must be in the lock with the same version.
"""

import re
import sys
import tomllib
from importlib.metadata import PackageNotFoundError, version


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


def main(lock_path: str, pyproject_path: str) -> None:
    with open(lock_path) as f:
        lock = pins(f)
    with open(pyproject_path, "rb") as f:
        direct = pins(tomllib.load(f)["project"]["dependencies"])
    errors = [f"{n}: pyproject.toml pins {v}, requirements.lock has {lock.get(n)}" for n, v in direct.items()
              if lock.get(n) != v]
    for name, want in sorted(lock.items()):
        try:
            have = version(name)
        except PackageNotFoundError:
            have = None
        if have != want:
            errors.append(f"{name}: installed {have}, locked {want}")
    if errors:
        sys.exit("verify_pins: " + "; ".join(errors))
    print(f"verify_pins: {len(lock)} locked distributions installed at their pins ({len(direct)} direct)")


if __name__ == "__main__":
    main(*sys.argv[1:])
