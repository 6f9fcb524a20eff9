import os
import re
import stat

from recastflow.core.io import write_bytes_atomic, write_json_atomic


def test_outputs_are_complete_and_shareable(tmp_path):
    old = os.umask(0o022)
    try:
        write_json_atomic(tmp_path / "a" / "r.json", {"b": 1, "a": [1.5]})
    finally:
        os.umask(old)
    path = tmp_path / "a" / "r.json"
    assert path.read_text() == '{\n  "a": [\n    1.5\n  ],\n  "b": 1\n}\n'
    assert stat.S_IMODE(path.stat().st_mode) == 0o644  # mkstemp alone would give 0600
    assert [p.name for p in path.parent.iterdir()] == ["r.json"]  # no temporary left behind


def test_failed_write_leaves_nothing(tmp_path, monkeypatch):
    def fail(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", fail)
    try:
        write_bytes_atomic(tmp_path / "x.bin", b"data")
    except OSError:
        pass
    assert list(tmp_path.iterdir()) == []


# ----------------------------------------------------------------------------- paths that stay inside (issue 26)

import argparse  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

from recastflow.core.config import inside, read_document  # noqa: E402
from recastflow.core.errors import RecastError  # noqa: E402
from recastflow.core.io import check_output_target, confine_arguments, confined, path_policy  # noqa: E402


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project folder (the working directory) next to an outside folder, no cache or mirror there."""
    root = tmp_path / "project"
    (root / "data").mkdir(parents=True)
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "secret.json").write_text('{"a": 1}')
    monkeypatch.chdir(root)
    monkeypatch.setenv("RECASTFLOW_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("RECASTFLOW_MIRROR", raising=False)
    return root


def _args(**options: object) -> argparse.Namespace:
    return argparse.Namespace(command="patch", **options)


def test_a_link_out_of_the_project_is_refused_though_its_text_stays_inside(project: Path) -> None:
    link = project / "data" / "yields.json"
    link.symlink_to(project.parent / "outside" / "secret.json")
    # without the command line's policy (library use), only the text is checked
    assert inside(project, "data/yields.json", source=project / "grid.yaml", field="points[0].yields") == link
    with confine_arguments(_args(), {}, "config/config.yaml"):
        with pytest.raises(RecastError) as err:
            inside(project, "data/yields.json", source=project / "grid.yaml", field="points[0].yields")
        msg = str(err.value)
        assert msg.startswith(f"{project / 'grid.yaml'}: points[0].yields: path ")
        assert f"it leads to {project.parent / 'outside' / 'secret.json'}" in msg
        assert "allowed_paths in config/config.yaml" in msg and "\n" not in msg
        with pytest.raises(RecastError, match="is outside the project"):
            read_document(link)  # every document read is checked, not only the paths of config keys
    assert path_policy() is None  # restored after the command


def test_cache_mirror_and_allowed_paths_are_inside(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    outside = project.parent / "outside" / "secret.json"
    with confine_arguments(_args(input=str(outside)), {"allowed_paths": [str(project.parent / "outside")]}, "c.yaml"):
        assert read_document(outside) == {"a": 1}
    monkeypatch.setenv("RECASTFLOW_MIRROR", os.pathsep.join(["/nonexistent", str(project.parent / "outside")]))
    with confine_arguments(_args(input=str(outside)), {}, "c.yaml"):
        assert confined(outside) == outside
    monkeypatch.setenv("RECASTFLOW_MIRROR", "")
    cached = project.parent / "cache" / "x.json"
    with confine_arguments(_args(input=str(cached)), {}, "c.yaml"):
        assert confined(cached) == cached
    with pytest.raises(RecastError, match=r"--input: path .* is outside the project"):
        with confine_arguments(_args(input=str(outside)), {}, "c.yaml"):
            pass
    # relative allowed paths are relative to the project; a sibling folder named by '..' is allowed explicitly
    with confine_arguments(_args(inputs=[str(outside)]), {"allowed_paths": ["../outside"]}, "c.yaml"):
        pass


def test_config_folders_are_confined(project: Path) -> None:
    with pytest.raises(RecastError, match=r"c\.yaml: analyses_dir: path '/' .*is outside the project"):
        with confine_arguments(_args(), {"analyses_dir": "/", "signals_dir": "config/signals"}, "c.yaml"):
            pass


@pytest.mark.parametrize("make, kind", [
    (lambda p: p.mkdir(), "a directory"),
    (lambda p: p.symlink_to(p.parent / "target.json"), "a symbolic link"),
])
def test_outputs_only_to_regular_files_or_new_paths(project: Path, make, kind: str) -> None:
    out = project / "out.json"
    make(out)
    with pytest.raises(RecastError, match=f"out.json: --output: is {kind}; outputs are written only to regular files"):
        check_output_target(out, field="--output")
    with pytest.raises(RecastError, match=f"is {kind}"):
        write_json_atomic(out, {"a": 1})
    assert not (project / "target.json").exists() and sorted(p.name for p in project.iterdir()) == ["data", "out.json"]


def test_a_device_is_never_replaced(project: Path) -> None:
    # as root, the atomic rename would put a JSON file in place of /dev/null
    with pytest.raises(RecastError, match=r"/dev/null: is a device"):
        write_json_atomic(Path("/dev/null"), {"a": 1})
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)
    with pytest.raises(RecastError, match=r"--output: path '/dev/null' is outside the project"):
        with confine_arguments(_args(output="/dev/null"), {}, "c.yaml"):
            pass


def test_outdir_must_be_a_folder_or_new(project: Path) -> None:
    (project / "file").write_text("x")
    with pytest.raises(RecastError, match=r"file: --outdir: exists and is not a folder"):
        with confine_arguments(_args(outdir="file"), {}, "c.yaml"):
            pass
    with confine_arguments(_args(outdir="new/folder", output="results/x.json"), {}, "c.yaml"):
        pass


# ----------------------------------------------------------------------------- one check for every input (issue 26)

from recastflow.core.io import input_path  # noqa: E402


@pytest.mark.parametrize(
    "make, kind",
    [
        (lambda p: os.mkfifo(p), "a named pipe (FIFO)"),
        (lambda p: p.mkdir(), "a folder"),
    ],
)
def test_inputs_that_are_not_regular_files_are_refused_before_they_are_opened(project: Path, make, kind: str) -> None:
    path = project / "data" / "yields.json"
    make(path)
    # a named pipe would block the read for ever; a folder would give a traceback or "not found"
    with pytest.raises(RecastError) as err:
        read_document(path)
    assert str(err.value) == f"{path}: is {kind}, not a regular file" + (
        "; name a file in it" if kind == "a folder" else "; only regular files are read"
    )
    with pytest.raises(RecastError, match=rf"grid\.yaml: points\[0\]\.yields: '.*yields\.json' is {re.escape(kind)}"):
        inside(project, "data/yields.json", source=project / "grid.yaml", field="points[0].yields")
    with pytest.raises(RecastError, match=rf"--input: is {re.escape(kind)}, not a regular file"):
        with confine_arguments(_args(input="data/yields.json"), {}, "c.yaml"):
            pass


def test_a_pipe_given_for_any_path_option_is_refused(project: Path) -> None:
    os.mkfifo(project / "data" / "pipe")
    with pytest.raises(RecastError, match=r"data/pipe: --yields: is a named pipe \(FIFO\), not a regular file or a folder"):
        with confine_arguments(_args(yields="data/pipe"), {}, "c.yaml"):
            pass
    # a folder is fine where the option may name one, and a missing input is left to the command's own message
    with confine_arguments(_args(yields="data", input="data/missing.parquet"), {}, "c.yaml"):
        pass


def test_input_path_follows_links_and_names_what_is_missing(project: Path) -> None:
    (project / "data" / "real.json").write_text("{}")
    (project / "data" / "link.json").symlink_to(project / "data" / "real.json")
    assert input_path(project / "data" / "link.json") == project / "data" / "link.json"
    with pytest.raises(RecastError, match=r"^g\.yaml: file: event file '.*nope\.hepmc3' not found$"):
        input_path(project / "nope.hepmc3", source="g.yaml", field="file", what="event file")
    (project / "data" / "out.json").symlink_to(project.parent / "outside" / "secret.json")
    with confine_arguments(_args(), {}, "c.yaml"):
        with pytest.raises(RecastError, match="is outside the project"):
            input_path(project / "data" / "out.json")
        with pytest.raises(RecastError, match=r"^path '/dev/null' is outside the project"):
            input_path("/dev/null")
    with confine_arguments(_args(), {"allowed_paths": ["/dev"]}, "c.yaml"):
        with pytest.raises(RecastError, match=r"^/dev/null: is a device, not a regular file"):
            input_path("/dev/null")
