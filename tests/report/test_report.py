"""Tests for recastflow.report.html: the self-contained HTML report."""

from __future__ import annotations

import base64
import os
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from recastflow.core.errors import RecastError
from recastflow.report.html import ReportSection, write_report

VOID_TAGS = {"meta", "br", "img", "hr", "link", "input"}
TINY_PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9aw"
    "AAAABJRU5ErkJggg=="
)


class _Structure(HTMLParser):
    """Collects tags, attributes and unbalanced-tag errors."""

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.starts: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.starts.append((tag, dict(attrs)))
        if tag not in VOID_TAGS:
            self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack.pop() != tag:
            self.errors.append(f"unexpected </{tag}>")


def _parse(text: str) -> _Structure:
    """Parse HTML and return what was found."""
    parser = _Structure()
    parser.feed(text)
    parser.close()
    return parser


def _rows() -> list[dict[str, Any]]:
    """Three points: trusted, flagged, failed."""
    return [
        {"point": "sbottom_1300_205_60", "status": "trusted", "cls_obs": 0.0123456,
         "cls_exp": [0.001, 0.01, 0.03, 0.07, 0.15], "xsec_pb": None, "issues": []},
        {"point": "sbottom_1400_550_60", "status": "flagged", "cls_obs": 0.2,
         "cls_exp": [0.1, 0.2, 0.3, 0.4, 0.5], "xsec_pb": 0.5,
         "issues": ["free fit to data: 2 parameter(s) at a bound (a, b)"]},
        {"point": "sbottom_1500_800_60", "status": "failed", "cls_obs": None,
         "cls_exp": None, "xsec_pb": 0.25, "issues": ["fit did not converge"]},
    ]


@pytest.fixture
def image(tmp_path: Path) -> Path:
    """A one-pixel PNG on disk."""
    path = tmp_path / "img.png"
    path.write_bytes(TINY_PNG)
    return path


def _sections(image: Path) -> list[ReportSection]:
    """A report with text, a table and an image."""
    return [
        ReportSection(heading="Summary", text="First paragraph.\n\nSecond paragraph."),
        ReportSection(heading="Points", table=_rows(), images=[(image, "Exclusion contour")]),
    ]


def test_report_is_valid_self_contained_html(tmp_path: Path, image: Path) -> None:
    out = tmp_path / "report.html"
    write_report(out, title="RegionB", sections=_sections(image))
    text = out.read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>")
    parsed = _parse(text)
    assert parsed.errors == [] and parsed.stack == []
    images = [attrs for tag, attrs in parsed.starts if tag == "img"]
    uri = "data:image/png;base64," + base64.b64encode(TINY_PNG).decode()
    assert images == [{"src": uri, "alt": "Exclusion contour"}]
    assert not any(tag in ("script", "link") for tag, _ in parsed.starts)
    assert "http://" not in text and "https://" not in text
    assert "<p>First paragraph.</p>" in text and "<p>Second paragraph.</p>" in text


def test_flagged_and_failed_rows_are_marked(tmp_path: Path, image: Path) -> None:
    out = tmp_path / "report.html"
    write_report(out, title="t", sections=_sections(image))
    parsed = _parse(out.read_text(encoding="utf-8"))
    row_classes = [attrs.get("class") for tag, attrs in parsed.starts if tag == "tr"]
    # Header row, then trusted / flagged / failed.
    assert row_classes == [None, None, "status-flagged", "status-failed"]


def test_flagged_points_are_named_in_the_text(tmp_path: Path, image: Path) -> None:
    out = tmp_path / "report.html"
    write_report(out, title="t", sections=_sections(image))
    text = out.read_text(encoding="utf-8")
    overview = text.split('<section id="section-1">')[0]
    assert "1 flagged (amber rows)" in overview and "sbottom_1400_550_60" in overview
    assert "1 failed (red rows)" in overview and "sbottom_1500_800_60" in overview
    assert "2 parameter(s) at a bound (a, b)" in text


def test_all_trusted_says_so(tmp_path: Path) -> None:
    out = tmp_path / "report.html"
    write_report(out, title="t", sections=[ReportSection(heading="Points", table=_rows()[:1])])
    text = out.read_text(encoding="utf-8")
    assert "No flagged or failed entries" in text and 'class="status-' not in text


def test_cell_formatting(tmp_path: Path) -> None:
    out = tmp_path / "report.html"
    write_report(out, title="t", sections=[ReportSection(heading="Points", table=_rows())])
    text = out.read_text(encoding="utf-8")
    assert ">0.01235<" in text
    assert ">0.001, 0.01, 0.03, 0.07, 0.15<" in text
    assert ">\u2014<" in text  # None
    header = text.split("<thead>")[1].split("</thead>")[0]
    assert [cell.split("</th>")[0] for cell in header.split('scope="col">')[1:]] == list(_rows()[0])


def test_columns_come_from_first_row(tmp_path: Path) -> None:
    out = tmp_path / "report.html"
    rows = [{"a": 1, "b": 2.5}, {"a": 3, "c": "ignored"}]
    write_report(out, title="t", sections=[ReportSection(heading="h", table=rows)])
    text = out.read_text(encoding="utf-8")
    assert "ignored" not in text
    assert "<tr><td class=\"num\">3</td><td>\u2014</td></tr>" in text


def test_every_string_is_escaped(tmp_path: Path, image: Path) -> None:
    evil = '<script>alert("x")</script> & co'
    out = tmp_path / "report.html"
    write_report(
        out,
        title=evil,
        sections=[
            ReportSection(
                heading=evil,
                text=evil,
                table=[{evil: evil, "status": "flagged", "point": evil, "issues": [evil]}],
                images=[(image, evil)],
            )
        ],
    )
    text = out.read_text(encoding="utf-8")
    assert "<script" not in text
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; co" in text
    parsed = _parse(text)
    assert parsed.errors == [] and parsed.stack == []


def test_report_is_reproducible(tmp_path: Path, image: Path) -> None:
    first, second = tmp_path / "a.html", tmp_path / "b.html"
    write_report(first, title="t", sections=_sections(image))
    write_report(second, title="t", sections=_sections(image))
    assert first.read_bytes() == second.read_bytes()


def test_write_is_atomic_and_leaves_no_temp_files(tmp_path: Path, image: Path) -> None:
    out = tmp_path / "report.html"
    out.write_text("old", encoding="utf-8")
    write_report(out, title="new", sections=_sections(image))
    assert "<h1>new</h1>" in out.read_text(encoding="utf-8")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["img.png", "report.html"]
    assert os.stat(out).st_mode & 0o777 == 0o644


def test_missing_image_is_user_error_and_keeps_old_report(tmp_path: Path) -> None:
    out = tmp_path / "report.html"
    out.write_text("old", encoding="utf-8")
    missing = tmp_path / "nope.png"
    with pytest.raises(RecastError) as err:
        write_report(out, title="t", sections=[ReportSection(heading="h", images=[(missing, "c")])])
    assert err.value.path == str(missing)
    assert out.read_text(encoding="utf-8") == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.html"]


def test_yield_check_section_of_an_unvalidated_workspace_says_reported_not_gated(tmp_path: Path) -> None:
    import json

    from recastflow.report.assemble import _yield_check_section

    def row(point: str, within: bool, enough: bool = True) -> dict[str, Any]:
        return {"point": point, "sr_total": 1.0, "sr_total_stat": 0.1, "sr_total_atlas": 1.0, "deviation": 0.0,
                "rtol": 0.25, "gated": False, "passed": True, "note": "", "within": within, "enough_events": enough,
                "result": ("in" if within else "out") if enough else "info"}

    path = tmp_path / "G.json"
    path.write_text(json.dumps([row("P1", True), row("P2", False), row("P3", True, enough=False)]))
    section = _yield_check_section(path, None, None)
    assert "reported, not gated" in section.text and "1 of 2 points" in section.text
    assert [r["status"] for r in section.table] == ["info, within", "info, outside", "info"]
    gated = [dict(row("P1", True), gated=True, result="pass")]
    path.write_text(json.dumps(gated))
    assert "1 of 1 gated points within tolerance" in _yield_check_section(path, None, None).text
    # the same words as the check's own table (recastflow.checks.yields.check_outcome)
    path.write_text(json.dumps([row("P3", True, enough=False)]))
    assert "nothing to gate" in _yield_check_section(path, None, None).text
