"""The check runner: print, then fail before writing anything, then write exactly the files named."""

from pathlib import Path

import pytest

from recastflow.checks.runner import CheckOutputs, CheckResult, run_check
from recastflow.core.errors import CheckFailed


def _drawn(png: Path, pdf: Path | None) -> None:
    png.write_bytes(b"png")
    if pdf is not None:
        pdf.write_bytes(b"pdf")


def test_a_failed_check_prints_its_table_and_writes_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    outputs = CheckOutputs(table=tmp_path / "t.txt", json=tmp_path / "t.json", plot=tmp_path / "t.png",
                           plot_pdf=tmp_path / "t.pdf")
    with pytest.raises(CheckFailed, match="1 of 2 values outside tolerance"):
        run_check(CheckResult(text="TABLE", records=[], failure="1 of 2 values outside tolerance", plot=_drawn),
                  outputs)
    assert "TABLE" in capsys.readouterr().out
    assert list(tmp_path.iterdir()) == []


def test_a_passed_check_writes_exactly_the_files_named(tmp_path: Path) -> None:
    outputs = CheckOutputs(table=tmp_path / "a" / "t.txt", json=tmp_path / "b" / "rows.json",
                           plot=tmp_path / "c" / "p.png", plot_pdf=tmp_path / "d" / "p.pdf")
    for out in (outputs.table, outputs.json, outputs.plot, outputs.plot_pdf):
        out.parent.mkdir()
    run_check(CheckResult(text="TABLE", records=[{"passed": True}], plot=_drawn), outputs)
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file()) == [
        "a/t.txt", "b/rows.json", "c/p.png", "d/p.pdf"]
    assert (tmp_path / "a" / "t.txt").read_text() == "TABLE\n"


def test_outputs_not_named_are_not_written(tmp_path: Path) -> None:
    run_check(CheckResult(text="TABLE", records=[]), CheckOutputs(table=tmp_path / "t.txt"))
    assert [p.name for p in tmp_path.iterdir()] == ["t.txt"]


def test_write_failed_writes_every_output_marked_failed_then_fails(tmp_path: Path) -> None:
    outputs = CheckOutputs(table=tmp_path / "t.txt", json=tmp_path / "t.json", plot=tmp_path / "t.png",
                           plot_pdf=tmp_path / "t.pdf")
    result = CheckResult(text="TABLE", records=[{"passed": False}], failure="1 of 2 values outside", plot=_drawn)
    with pytest.raises(CheckFailed, match="1 of 2 values outside"):
        run_check(result, outputs, write_failed=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.json", "t.pdf", "t.png", "t.txt"]
    assert (tmp_path / "t.txt").read_text() == "TABLE\nCHECK FAILED: 1 of 2 values outside\n"
    (tmp_path / "t.txt").unlink()
    run_check(result, outputs, fail=False)  # recorded, not raised: a later step decides
    assert (tmp_path / "t.txt").read_text().endswith("CHECK FAILED: 1 of 2 values outside\n")
