import os
import stat

from recastflow.io import write_bytes_atomic, write_json_atomic


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
