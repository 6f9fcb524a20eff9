"""One source of exact versions, and every place that installs agrees with it; every rule names a locked image.

requirements.lock (repository root) pins every distribution exactly: make's .venv, .ci/run (make test) and the
stats image (containers/build.sh) install with it as pip constraints, and envs/*.yaml (--sdm conda) pin the
same versions. pyproject.toml states compatible ranges instead, which must admit every locked version. Each
rule's `container:` must name a stage of containers/lock.yaml, pinned by digest. Fast and offline: reads files
and the installed distributions' metadata only.
"""

import re
import tomllib
from importlib.metadata import distributions
from pathlib import Path

import pytest
import yaml
from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.version import Version

REPO = Path(__file__).resolve().parents[1]
LOCK = REPO / "requirements.lock"
MARKER = "# ---- dependency closure:"
DIGEST_REF = re.compile(r"^[a-z0-9][a-z0-9._/:-]*@sha256:[0-9a-f]{64}$")
# conda-forge names of the same distributions on PyPI
CONDA_TO_PYPI = {"matplotlib-base": "matplotlib"}
# the Python of the Debian release the base image is made from (containers/build.sh debootstraps it)
DEBIAN_PYTHON = {"bookworm": "3.11"}
# pins whose reason must stay written beside them in the lock: name -> words the reason contains
REASONED = {
    "scipy": ["SLSQP", "1e-5", "1.15.3"],
    "pyhf": ["latest", "toy"],
    "pythia8mc": ["wheel"],
    "ruff": ["rules"],
    "mypy": ["rules"],
    "jax": ["pyhf", "1e-12"],
    "onnxruntime": ["validation"],
    "protobuf": ["protobuf<7"],
    "htcondor": ["<25"],
    "cabinetry": ["pyhf 0.7.6"],
    "jsonschema-rs": ["pyhf"],
}


def norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def exact_pins(lines, sep="=="):
    out = {}
    for line in lines:
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        m = re.fullmatch(rf"([A-Za-z0-9][A-Za-z0-9._-]*)\s*{sep}\s*([^\s=;]+)", line)
        assert m, f"not an exact pin: {line!r}"
        out[norm(m[1])] = m[2]
    return out


def lock_parts() -> tuple[str, str]:
    text = LOCK.read_text()
    assert MARKER in text, f"requirements.lock has no line starting with {MARKER!r}"
    head, closure = text.split(MARKER, 1)
    return head, closure.split("\n", 1)[1]


def reasons(head: str) -> dict[str, str]:
    """Each pin of the lock's hand-edited part with the comment beside it and the comment lines above it."""
    out: dict[str, str] = {}
    block: list[str] = []
    for line in head.splitlines():
        code, _, comment = line.partition("#")
        if not line.strip():
            block = []
        elif not code.strip():
            block.append(comment)
        else:
            out[norm(code.split("==")[0].strip())] = " ".join([*block, comment])
            block = []
    return out


@pytest.fixture(scope="module")
def lock():
    return exact_pins(LOCK.read_text().splitlines())


@pytest.fixture(scope="module")
def project():
    with open(REPO / "pyproject.toml", "rb") as f:
        return tomllib.load(f)


@pytest.fixture(scope="module")
def requirements(project):
    """Every requirement of pyproject.toml: (where, Requirement) for the dependencies and each extra."""
    reqs = [("dependencies", Requirement(r)) for r in project["project"]["dependencies"]]
    for extra, items in project["project"]["optional-dependencies"].items():
        reqs += [(f"[{extra}]", Requirement(r)) for r in items]
    reqs += [("build-system", Requirement(r)) for r in project["build-system"]["requires"]]
    return reqs


@pytest.fixture(scope="module")
def conda_env():
    """Pins of all envs/*.yaml together (conda `=` pins and pip `==` pins); they must not disagree."""
    merged: dict[str, str] = {}
    for path in sorted((REPO / "envs").glob("*.yaml")):
        doc = yaml.safe_load(path.read_text())
        conda = [d for d in doc["dependencies"] if isinstance(d, str)]
        pins = {norm(CONDA_TO_PYPI.get(n, n)): v for n, v in exact_pins(conda, sep="=").items()}
        for section in (d for d in doc["dependencies"] if isinstance(d, dict)):
            pip = section.get("pip", [])
            assert "-c ../requirements.lock" in [x.split("#", 1)[0].strip() for x in pip], (
                f"{path.name}: pip installs the package without the lock as constraints"
            )
            pins.update(exact_pins(x for x in pip if not x.strip().startswith(("-e", "-c"))))
        for name, version in pins.items():
            assert merged.setdefault(name, version) == version, f"{path.name}: {name}={version}, another env has {merged[name]}"
    return merged


@pytest.fixture(scope="module")
def stage_lock():
    return yaml.safe_load((REPO / "containers" / "lock.yaml").read_text())


def test_pyproject_states_ranges_not_pins(requirements):
    pinned = [str(r) for _, r in requirements if any(s.operator in ("==", "===") for s in r.specifier)]
    assert not pinned, f"pyproject.toml pins exactly (exact versions belong in requirements.lock): {pinned}"
    names = {norm(r.name) for _, r in requirements}
    assert {"pyhf", "scipy", "numpy", "snakemake", "ruff"} <= names


def test_pyproject_ranges_admit_every_locked_version(requirements, lock):
    """pip install -c requirements.lock '.[...]' can hold every pin: no range excludes a locked version."""
    missing = sorted(str(r) for _, r in requirements if norm(r.name) not in lock)
    assert not missing, f"requirements.lock does not pin {missing}"
    outside = [f"{where}: {r} excludes the locked {lock[norm(r.name)]}" for where, r in requirements
               if not r.specifier.contains(Version(lock[norm(r.name)]), prereleases=True)]
    assert not outside, "; ".join(outside)


def test_lock_is_exact_pins_without_machine_paths(lock):
    text = LOCK.read_text()
    names = [norm(ln.split("==")[0]) for ln in (x.split("#", 1)[0].strip() for x in text.splitlines()) if ln]
    assert len(names) == len(set(names)), f"pinned twice: {sorted({n for n in names if names.count(n) > 1})}"
    for line in text.splitlines():
        code = line.split("#", 1)[0]
        assert not re.search(r"file:|https?:|@|/", code), f"requirements.lock: not a plain pin: {line!r}"
    assert not re.search(r"/(work|tmp|home|root|opt)/|file://", text), "requirements.lock names a path of some machine"
    assert len(lock) > 100, "requirements.lock should hold the full dependency closure"


def test_lock_hand_part_holds_every_requirement_and_the_tools(requirements):
    head, closure = lock_parts()
    hand, rest = exact_pins(head.splitlines()), exact_pins(closure.splitlines())
    assert not set(hand) & set(rest), f"pinned in both parts: {sorted(set(hand) & set(rest))}"
    missing = sorted({norm(r.name) for where, r in requirements if where != "build-system"} - set(hand))
    assert not missing, f"pyproject.toml requirements missing from the lock's hand-edited part: {missing}"
    assert {"pip", "setuptools"} <= set(hand)
    closure_lines = [ln for ln in closure.splitlines() if ln.strip()]
    assert closure_lines == sorted(closure_lines, key=lambda ln: norm(ln.split("==")[0])), (
        "the closure part is written sorted by containers/build.sh --relock"
    )


def test_lock_keeps_the_reason_of_every_reasoned_pin():
    head, _ = lock_parts()
    found = reasons(head)
    for name, words in REASONED.items():
        assert name in found, f"requirements.lock: {name} is not in the hand-edited part"
        absent = [w for w in words if w not in found[name]]
        assert not absent, f"requirements.lock: the comment on {name} no longer says {absent}: {found[name]!r}"


def test_lock_is_closed_under_installed_metadata(lock):
    """Offline closure check: every locked distribution installed here asks only for locked versions."""
    env = default_environment()
    bad = []
    for dist in distributions():
        name = norm(dist.metadata["Name"])
        if name not in lock or dist.version != lock[name]:
            continue
        for text in dist.requires or []:
            req = Requirement(text)
            if req.marker is not None and not req.marker.evaluate({**env, "extra": ""}):
                continue
            have = lock.get(norm(req.name))
            if have is None or not req.specifier.contains(Version(have), prereleases=True):
                bad.append(f"{name} {dist.version} requires {req}, locked: {have}")
    assert not bad, "; ".join(bad)


def test_this_environment_was_installed_from_the_lock(lock):
    """The environment running the tests holds the locked versions (make installs with -c requirements.lock).

    pip and setuptools are left out: `python -m venv` seeds its own and make then installs the lock's, but
    the tests run just as well with another installer.
    """
    differ = []
    for dist in distributions():
        name = norm(dist.metadata["Name"])
        if name in lock and name not in ("pip", "setuptools") and dist.version != lock[name]:
            differ.append(f"{name} {dist.version} (locked {lock[name]})")
    assert not differ, f"installed versions differ from requirements.lock (run make setup): {differ}"


def test_conda_envs_pin_the_locked_versions(conda_env, lock):
    missing = sorted(set(conda_env) - set(lock) - {"python"})
    assert not missing, f"envs/*.yaml pin {missing}, requirements.lock does not"
    differ = {n: (v, lock[n]) for n, v in conda_env.items() if n in lock and v != lock[n]}
    assert not differ, f"envs/*.yaml vs requirements.lock: {differ}"
    assert "pip" in conda_env, "pip must be pinned in envs/*.yaml"


def test_make_ci_and_image_install_from_the_lock():
    makefile = (REPO / "Makefile").read_text()
    assert re.search(r"^LOCK := requirements\.lock$", makefile, re.M)
    assert re.search(r"^PIP_INSTALL := .*-c \$\(LOCK\)", makefile, re.M)
    assert re.search(r"^\$\(BIN\)/recastflow: pyproject\.toml \$\(LOCK\)$", makefile, re.M), "the venv is not rebuilt when the lock changes"
    assert "make test" in (REPO / ".ci" / "run").read_text()
    build = (REPO / "containers" / "build.sh").read_text()
    assert 'reqlock="$repo/requirements.lock"' in build
    text = (REPO / "containers" / "stats" / "Containerfile").read_text()
    assert "-c requirements.lock -r runtime.txt" in text and "verify_pins.py" in text
    assert re.search(r"^FROM \$\{BASE\}", text, re.M)
    assert not (REPO / "containers" / "stats" / "requirements.lock").exists(), "a second lock: the root one is the only source"


def test_image_python_matches_conda_env(conda_env, project):
    build = (REPO / "containers" / "build.sh").read_text()
    release = re.search(r"debootstrap --variant=minbase (\w+)", build)[1]
    assert conda_env["python"] == DEBIAN_PYTHON[release]
    assert project["project"]["requires-python"] == f">={DEBIAN_PYTHON[release]}"


def test_lock_pins_every_stage_by_digest(stage_lock):
    stages = stage_lock["stages"]
    assert set(stages) >= {"patch", "limits", "check", "report", "archive"}
    for stage, ref in stages.items():
        assert DIGEST_REF.match(ref), f"containers/lock.yaml: stage {stage}: {ref!r} not pinned by @sha256"
    refs = {img["reference"] for img in stage_lock["images"].values()}
    assert set(stages.values()) <= refs


def rules_with_containers():
    found = []
    for smk in sorted((REPO / "workflow" / "rules").glob("*.smk")):
        blocks = re.split(r"^(?=rule \w+:)", smk.read_text(), flags=re.M)
        for block in blocks:
            m = re.match(r"rule (\w+):", block)
            if not m:
                continue
            c = re.search(r"^\s+container:\s*(?:\n\s*)?(.+)$", block, re.M)
            stage = re.fullmatch(r'stage_container\("(\w+)"\)', c[1].strip()) if c else None
            found.append((smk.stem, m[1], c and c[1].strip(), stage and stage[1]))
    return found


def test_every_rule_runs_in_a_locked_stage_image(stage_lock):
    rules = rules_with_containers()
    assert len(rules) >= 6
    for stem, rule, directive, stage in rules:
        assert directive, f"workflow/rules/{stem}.smk: rule {rule} has no container:"
        assert stage, f"workflow/rules/{stem}.smk: rule {rule}: container: {directive} is not stage_container(\"...\")"
        assert stage == stem, f"workflow/rules/{stem}.smk: rule {rule} uses the image of stage {stage}"
        assert stage in stage_lock["stages"], f"rule {rule}: stage {stage} is not in containers/lock.yaml"
