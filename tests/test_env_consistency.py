"""The three places that pin the statistics stack agree, and every rule names a locked container.

pyproject.toml (native install), envs/stats.yaml (--sdm conda) and the stats image
(containers/stats/requirements.lock, installed with pip --no-deps by containers/stats/Containerfile)
must pin the same version of every package they share; each rule's `container:` must name a stage of
containers/lock.yaml, pinned by digest. Fast: reads files only.
"""

import re
import tomllib
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
DIGEST_REF = re.compile(r"^[a-z0-9][a-z0-9._/:-]*@sha256:[0-9a-f]{64}$")
# conda-forge names of the same distributions on PyPI
CONDA_TO_PYPI = {"matplotlib-base": "matplotlib"}
# the Python of the Debian release the base image is made from (containers/build.sh debootstraps it)
DEBIAN_PYTHON = {"bookworm": "3.11"}


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


@pytest.fixture(scope="module")
def pyproject():
    with open(REPO / "pyproject.toml", "rb") as f:
        return exact_pins(tomllib.load(f)["project"]["dependencies"])


@pytest.fixture(scope="module")
def conda_env():
    """Pins of all envs/*.yaml together (conda `=` pins and pip `==` pins); they must not disagree."""
    merged: dict[str, str] = {}
    for path in sorted((REPO / "envs").glob("*.yaml")):
        doc = yaml.safe_load(path.read_text())
        conda = [d for d in doc["dependencies"] if isinstance(d, str)]
        pins = {norm(CONDA_TO_PYPI.get(n, n)): v for n, v in exact_pins(conda, sep="=").items()}
        for section in (d for d in doc["dependencies"] if isinstance(d, dict)):
            pip = [x for x in section.get("pip", []) if not x.strip().startswith("-e")]
            pins.update(exact_pins(pip))
        for name, version in pins.items():
            assert merged.setdefault(name, version) == version, f"{path.name}: {name}={version}, another env has {merged[name]}"
    return merged


@pytest.fixture(scope="module")
def image_lock():
    return exact_pins((REPO / "containers" / "stats" / "requirements.lock").read_text().splitlines())


@pytest.fixture(scope="module")
def stage_lock():
    return yaml.safe_load((REPO / "containers" / "lock.yaml").read_text())


def test_pyproject_pins_everything_exactly(pyproject):
    assert pyproject and "pyhf" in pyproject and "scipy" in pyproject


def test_conda_env_matches_pyproject(pyproject, conda_env):
    missing = sorted(set(pyproject) - set(conda_env))
    assert not missing, f"envs/stats.yaml does not pin {missing}"
    differ = {n: (v, conda_env[n]) for n, v in pyproject.items() if conda_env[n] != v}
    assert not differ, f"pyproject.toml vs envs/stats.yaml: {differ}"


def test_image_matches_pyproject_and_conda_env(pyproject, conda_env, image_lock):
    missing = sorted(set(pyproject) - set(image_lock))
    assert not missing, f"containers/stats/requirements.lock does not pin {missing}"
    shared = (set(conda_env) | set(pyproject)) & set(image_lock)
    differ = {}
    for name in sorted(shared):
        pins = {src: p[name] for src, p in (("pyproject.toml", pyproject), ("envs/*.yaml", conda_env),
                                             ("requirements.lock", image_lock)) if name in p}
        if len(set(pins.values())) > 1:
            differ[name] = pins
    assert not differ, f"versions differ: {differ}"
    assert "pip" in shared, "pip must be pinned in envs/stats.yaml and the image lock"


def test_image_installs_exactly_the_lock():
    text = (REPO / "containers" / "stats" / "Containerfile").read_text()
    assert "requirements.lock" in text and "--no-deps" in text and "verify_pins.py" in text
    assert re.search(r"^FROM \$\{BASE\}", text, re.M)


def test_image_python_matches_conda_env(conda_env):
    build = (REPO / "containers" / "build.sh").read_text()
    release = re.search(r"debootstrap --variant=minbase (\w+)", build)[1]
    assert conda_env["python"] == DEBIAN_PYTHON[release]
    with open(REPO / "pyproject.toml", "rb") as f:
        requires = tomllib.load(f)["project"]["requires-python"]
    assert requires == f">={DEBIAN_PYTHON[release]}"


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
