"""The pinned stage images: the workflow run in them gives byte-identical results to the native run.

Snakemake 9 runs `container:` jobs only through apptainer; tests/container/apptainer is a test-only
adapter that translates its calls to podman (see that file). The slow test builds (or reuses) the
images with containers/build.sh, writes their digests to the test project's containers/lock.yaml,
runs the toy project natively and then with `--sdm apptainer`, and compares the results byte for byte.
The lock tests at the end need neither podman nor images.
"""

import json
import os
import shutil
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest
import yaml

from conftest import REPO, copy_workflow

BIN = Path(sys.executable).parent
ADAPTER_DIR = REPO / "tests" / "container"
HAVE_PODMAN = shutil.which("podman") is not None
needs_podman = pytest.mark.skipif(not HAVE_PODMAN, reason="podman is not installed (containers/install-podman.sh)")
# at least these; every file of results/ but benchmarks/ (timings) is compared byte for byte
REQUIRED = ["results/patch/TOYGRID/patchset.json", "results/limits/TOYGRID/batches/b000.json",
            "results/limits/TOYGRID/limits.json", "results/limits/TOYGRID/limits.csv",
            "results/check/TOY.txt", "results/check/TOY.json", "results/limits/TOYGRID/exclusion.png",
            "results/limits/TOYGRID/exclusion.pdf", "results/report/index.html"]


def env_with(path_dirs, **extra):
    env = dict(os.environ, PATH=os.pathsep.join([*map(str, path_dirs), os.environ["PATH"]]), OMP_NUM_THREADS="1",
               **extra)
    env.setdefault("CONTAINERS_CONF", str(REPO / "containers" / "containers.conf"))
    return env


def snakemake(cwd, *args, path_dirs=(BIN,), **extra):
    return subprocess.run([str(BIN / "snakemake"), "--cores", "2", *args], cwd=cwd, capture_output=True, text=True,
                          env=env_with(path_dirs, **extra))


def toy_project_with_check(project: Path) -> None:
    copy_workflow(project)
    a = project / "config" / "analyses" / "TOY" / "analysis.yaml"
    doc = yaml.safe_load(a.read_text())
    # a reference every CLs passes: the check rule runs (and its table is compared), it cannot fail
    doc["references"] = [{"grid": "TOYGRID", "point": "P1", "quantity": "cls_obs", "value": 0.5, "rtol": 2.0,
                          "source": "test"}]
    a.write_text(yaml.safe_dump(doc, sort_keys=False))


@pytest.fixture(scope="module")
def built_lock(tmp_path_factory):
    """containers/build.sh builds (or reuses) the images; the digests go to a lock file of the test's own."""
    lock = tmp_path_factory.mktemp("images") / "lock.yaml"
    t0 = time.monotonic()
    proc = subprocess.run(["bash", str(REPO / "containers" / "build.sh"), "--lock", str(lock)], capture_output=True,
                          text=True, timeout=3600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    print(f"\ncontainers/build.sh: {time.monotonic() - t0:.0f} s\n{proc.stderr}")
    committed = REPO / "containers" / "lock.yaml"
    if not committed.is_file() or yaml.safe_load(committed.read_text()) != yaml.safe_load(lock.read_text()):
        warnings.warn("containers/lock.yaml is not what containers/build.sh builds from this checkout "
                      "(sources or Debian packages changed since it was written): run containers/build.sh")
    return lock


@pytest.mark.slow
@needs_podman
def test_container_run_equals_native_run(project, built_lock, tmp_path_factory):
    toy_project_with_check(project)
    (project / "containers").mkdir()
    shutil.copy(built_lock, project / "containers" / "lock.yaml")
    lock = yaml.safe_load(built_lock.read_text())
    stats_ref = lock["images"]["stats"]["reference"]

    t0 = time.monotonic()
    native = snakemake(project)
    t_native = time.monotonic() - t0
    assert native.returncode == 0, native.stderr[-3000:]
    (project / "results").rename(project / "results-native")

    # A `recastflow` on the host PATH that fails: a job that did not run in the image would call it.
    poison = tmp_path_factory.mktemp("poison")
    (poison / "recastflow").write_text("#!/bin/sh\necho 'host recastflow called outside the container' >&2\nexit 97\n")
    (poison / "recastflow").chmod(0o755)
    adapter_log = project / "adapter.log"
    t0 = time.monotonic()
    contained = snakemake(project, "--sdm", "apptainer", path_dirs=(ADAPTER_DIR, poison, BIN),
                          RECASTFLOW_APPTAINER_LOG=str(adapter_log))
    t_container = time.monotonic() - t0
    assert contained.returncode == 0, contained.stderr[-3000:]
    print(f"\nnative run {t_native:.1f} s, container run {t_container:.1f} s")

    def files(top):
        return sorted(str(p.relative_to(top)) for p in top.rglob("*")
                      if p.is_file() and p.relative_to(top).parts[0] != "benchmarks")

    native_files, container_files = files(project / "results-native"), files(project / "results")
    assert native_files == container_files
    assert {r.removeprefix("results/") for r in REQUIRED} <= set(container_files)
    differ = [rel for rel in container_files
              if (project / "results-native" / rel).read_bytes() != (project / "results" / rel).read_bytes()]
    assert not differ, f"differ between the native and the container run: {differ}"

    # every job ran through the adapter, in the locked image
    execs = [json.loads(line) for line in adapter_log.read_text().splitlines()]
    n_jobs = sum(1 for _ in (project / "logs").rglob("*.log"))  # one log per job
    # patch, one limits batch (3 points), table, check, report
    assert len(execs) == n_jobs >= 5, (len(execs), n_jobs)
    assert {e["reference"] for e in execs} == {stats_ref}
    assert all(e["cwd"] == str(project) for e in execs)
    assert sum("recastflow" in " ".join(e["command"]) for e in execs) == n_jobs
    image_id = subprocess.run(["podman", "image", "inspect", "--format", "{{.Id}}", stats_ref], capture_output=True,
                              text=True, env=env_with([]), check=True).stdout.strip()
    assert {e["id"] for e in execs} == {image_id}

    # the image's Python is the image's venv, with the pinned versions
    probe = subprocess.run(
        [str(ADAPTER_DIR / "apptainer"), "exec", "--home", str(project),
         str(next((project / ".snakemake" / "singularity").glob("*.simg"))), "bash", "-c",
         "python -c 'import sys, numpy, scipy, pyhf, recastflow; print(sys.prefix, numpy.__version__,"
         " scipy.__version__, pyhf.__version__, recastflow.__file__)'"],
        cwd=project, capture_output=True, text=True, env=env_with([], RECASTFLOW_APPTAINER_LOG=str(adapter_log)))
    assert probe.returncode == 0, probe.stderr
    prefix, np_v, sp_v, pyhf_v, rf_file = probe.stdout.split()
    assert prefix == "/opt/recastflow" and rf_file.startswith("/opt/recastflow/lib/python3.11/site-packages/")
    import numpy, pyhf, scipy  # noqa: E401  the native versions
    assert (np_v, sp_v, pyhf_v) == (numpy.__version__, scipy.__version__, pyhf.__version__)


@pytest.mark.slow
@needs_podman
def test_adapter_refuses_an_image_that_is_not_built(project, built_lock):
    toy_project_with_check(project)
    (project / "containers").mkdir()
    text = built_lock.read_text()
    ref = yaml.safe_load(text)["stages"]["patch"]
    other = ref.split("@")[0] + "@sha256:" + "0" * 64
    (project / "containers" / "lock.yaml").write_text(text.replace(ref, other))
    proc = snakemake(project, "--sdm", "apptainer", path_dirs=(ADAPTER_DIR, BIN))
    assert proc.returncode != 0
    assert "podman has no local image" in proc.stdout + proc.stderr
    assert not (project / "results").exists()


# --- fast: the lock is enforced at start, the adapter translates Snakemake's calls ------------------

GOOD = "localhost/recastflow-stats@sha256:" + "ab" * 32


def write_lock(project: Path, stages: dict) -> None:
    (project / "containers").mkdir(exist_ok=True)
    (project / "containers" / "lock.yaml").write_text(yaml.safe_dump({"stages": stages}))


@pytest.mark.parametrize("stages, message", [
    ({"fetch": GOOD, "generate": GOOD, "emulate": GOOD, "select": GOOD, "reweight": GOOD, "patch": GOOD,
      "limits": GOOD, "check": GOOD}, "no image for stage 'report'"),
    ({"fetch": GOOD, "generate": GOOD, "emulate": GOOD, "select": GOOD, "reweight": GOOD, "patch": GOOD,
      "limits": "localhost/recastflow-stats:latest",
      "check": GOOD, "report": GOOD},
     "stage 'limits': 'localhost/recastflow-stats:latest' is not an image reference pinned by @sha256"),
])
def test_workflow_refuses_a_bad_lock(project, stages, message):
    copy_workflow(project)
    write_lock(project, stages)
    proc = snakemake(project, "-n")
    assert proc.returncode != 0
    out = proc.stdout + proc.stderr   # Snakemake prints a WorkflowError to stdout when not on a terminal
    lines = [line for line in out.splitlines() if "containers/lock.yaml" in line]
    assert len(lines) == 1 and message in lines[0], out[-2000:]
    assert lines[0].startswith("recastflow: container lock error: containers/lock.yaml: ")
    assert "Traceback" not in out


def test_container_run_needs_a_lock(project):
    copy_workflow(project)
    proc = snakemake(project, "-n", "--sdm", "apptainer", path_dirs=(ADAPTER_DIR, BIN))
    assert proc.returncode != 0
    assert "recastflow: container lock error: containers/lock.yaml: missing; run containers/build.sh" in (
        proc.stdout + proc.stderr)


def test_good_lock_gives_every_rule_its_pinned_image(project):
    copy_workflow(project)
    # every stage the rules name: one rule file per stage (common.smk holds no rules)
    stages = sorted(p.stem for p in (project / "workflow" / "rules").glob("*.smk") if p.stem != "common")
    assert {"generate", "limits", "adaptive"} <= set(stages)
    write_lock(project, dict.fromkeys(stages, GOOD))
    proc = snakemake(project, "-n", "--sdm", "apptainer", path_dirs=(ADAPTER_DIR, BIN))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert f"Singularity image docker://{GOOD} will be pulled" in proc.stdout + proc.stderr


def adapter(*args, cwd, **env):
    return subprocess.run([str(ADAPTER_DIR / "apptainer"), *args], cwd=cwd, capture_output=True, text=True,
                          env=dict(os.environ, **env))


def test_adapter_version_is_accepted_by_snakemake(tmp_path):
    from packaging.version import Version
    from snakemake.deployment.singularity import Singularity

    out = adapter("--version", cwd=tmp_path).stdout
    assert out.startswith("apptainer") and Singularity().parseversion(out.strip()) >= Version("1.0.0")


def test_adapter_pull_refuses_unpinned_reference(tmp_path):
    proc = adapter("pull", "--name", "x.simg", "docker://localhost/recastflow-stats:latest", cwd=tmp_path)
    assert proc.returncode != 0 and "not pinned by @sha256" in proc.stderr
    assert not (tmp_path / "x.simg").exists()


def test_adapter_translates_exec(tmp_path):
    img = tmp_path / "abc.simg"
    img.write_text(json.dumps({"reference": GOOD, "id": "f" * 64}))
    bind = tmp_path / "cache"
    bind.mkdir()
    log = tmp_path / "adapter.log"
    proc = adapter("--quiet", "--silent", "exec", "--home", str(tmp_path), "--bind", str(bind), str(img), "bash", "-c",
                   "echo 'x' && recastflow --help", cwd=tmp_path, RECASTFLOW_APPTAINER_DRYRUN="1",
                   RECASTFLOW_APPTAINER_LOG=str(log), OMP_NUM_THREADS="1", VIRTUAL_ENV="/host/venv",
                   APPTAINERENV_FOO="bar")
    assert proc.returncode == 0, proc.stderr
    argv = json.loads(proc.stdout)
    assert argv[:5] == ["podman", "run", "--rm", "--network=none", "--pull=never"]
    assert argv[-4:] == ["f" * 64, "bash", "-c", "echo 'x' && recastflow --help"]
    pairs = list(zip(argv, argv[1:]))
    assert ("-v", f"{tmp_path}:{tmp_path}") in pairs and ("-v", f"{bind}:{bind}") in pairs
    assert ("-w", str(tmp_path)) in pairs
    envs = {v for k, v in pairs if k == "-e"}
    assert {"OMP_NUM_THREADS=1", "FOO=bar", f"HOME={tmp_path}"} <= envs
    assert not any(e.startswith(("VIRTUAL_ENV=", "PATH=")) for e in envs)
    assert json.loads(log.read_text())["reference"] == GOOD
