"""Tests for recastflow.report.plots: exclusion plot and cabinetry fit plots."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import pytest

from recastflow.report import plots as plotting
from recastflow.core.errors import RecastError

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
MASSES_X = (800, 1000, 1200, 1400, 1600)
MASSES_Y = (100, 300, 500, 700, 900)


def _record(mx: int, my: int, cls_obs: float | None, status: str = "trusted") -> dict[str, Any]:
    """One signal-point record as the workflow produces it."""
    factors = (0.3, 0.6, 1.1, 1.8, 3.0)
    cls_exp = None if cls_obs is None else [min(1.0, cls_obs * f) for f in factors]
    return {
        "point": f"sbottom_{mx}_{my}_60",
        "values": {"m_sbottom": mx, "m_neutralino2": my},
        "status": status,
        "issues": [] if status == "trusted" else ["free fit to data: 1 parameter(s) at a bound"],
        "cls_obs": cls_obs,
        "cls_exp": cls_exp,
        "xsec_pb": 0.01,
        "mu_ul_obs": None,
        "mu_ul_exp": None,
        "xsec_ul_obs_pb": None,
        "xsec_ul_exp_pb": None,
    }


@pytest.fixture
def grid() -> list[dict[str, Any]]:
    """A 5x5 grid where CLs falls with x: excluded on the left, allowed on the right."""
    records = []
    for i, mx in enumerate(MASSES_X):
        for j, my in enumerate(MASSES_Y):
            cls_obs = min(1.0, 10 ** (-3.0 + 0.7 * i + 0.1 * j))
            records.append(_record(mx, my, cls_obs))
    records[7]["status"] = "flagged"
    records[-1] = _record(1600, 900, None, status="failed")
    return records


@pytest.fixture
def captured(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, list[str]]]:
    """Record the texts and legend entries of every exclusion figure saved."""
    seen: list[dict[str, list[str]]] = []
    original = plotting.save_png_and_pdf

    def spy(fig: Any, out: Path, pdf: Path | None = None) -> None:
        texts = [t.get_text() for ax in fig.axes for t in ax.texts]
        legends = [
            t.get_text() for ax in fig.axes if ax.get_legend() for t in ax.get_legend().get_texts()
        ]
        seen.append({"texts": texts, "legend": legends})
        original(fig, out, pdf)

    monkeypatch.setattr(plotting, "save_png_and_pdf", spy)
    return seen


def _plot(records: list[dict[str, Any]], out: Path) -> None:
    """Draw the grid with fixed labels."""
    plotting.plot_exclusion(
        records,
        "m_sbottom",
        "m_neutralino2",
        out,
        title="sbottom grid",
        xlabel="m(sbottom) [GeV]",
        ylabel="m(neutralino2) [GeV]",
    )


def _notes(figure: dict[str, list[str]]) -> list[str]:
    """Texts on the figure that explain a missing contour."""
    # Notes are wrapped to fit the side panel; compare them as one line.
    return [" ".join(t.split()) for t in figure["texts"] if t.startswith("No ")]


def test_exclusion_writes_png_and_pdf(tmp_path: Path, grid: list[dict], captured: list) -> None:
    out = tmp_path / "exclusion.png"
    _plot(grid, out)
    assert out.read_bytes().startswith(PNG_SIGNATURE)
    assert out.with_suffix(".pdf").read_bytes().startswith(b"%PDF")
    legend = captured[0]["legend"]
    assert any(entry.startswith("Observed limit") for entry in legend)
    assert any(entry.startswith("Expected limit") for entry in legend)
    assert "flagged (not used)" in legend
    assert "failed" in legend
    assert _notes(captured[0]) == []


def test_exclusion_annotates_observed_cls(tmp_path: Path, grid: list[dict], captured: list) -> None:
    _plot(grid, tmp_path / "exclusion.png")
    annotated = [t for t in captured[0]["texts"] if not t.startswith("No ")]
    # The failed point has no CLs; every other point carries its value.
    assert len(annotated) == len(grid) - 1
    assert f"{grid[0]['cls_obs']:.2g}" in annotated


def test_exclusion_is_reproducible(tmp_path: Path, grid: list[dict]) -> None:
    first, second = tmp_path / "a" / "plot.png", tmp_path / "b" / "plot.png"
    _plot(grid, first)
    _plot(copy.deepcopy(grid), second)
    assert first.read_bytes() == second.read_bytes()
    assert first.with_suffix(".pdf").read_bytes() == second.with_suffix(".pdf").read_bytes()


def test_all_flagged_grid_gives_plot_with_note(
    tmp_path: Path, grid: list[dict], captured: list
) -> None:
    flagged = [dict(record, status="flagged") for record in grid]
    out = tmp_path / "flagged.png"
    _plot(flagged, out)
    assert out.read_bytes().startswith(PNG_SIGNATURE)
    notes = _notes(captured[0])
    assert len(notes) == 1 and "0 trusted point(s)" in notes[0]
    assert captured[0]["legend"] == ["flagged (not used)"]


def test_collinear_points_give_note(tmp_path: Path, captured: list) -> None:
    records = [_record(mx, 100, 10 ** (-3 + i)) for i, mx in enumerate(MASSES_X)]
    _plot(records, tmp_path / "line.png")
    assert "lie on a line" in _notes(captured[0])[0]


def test_no_crossing_gives_note(tmp_path: Path, captured: list) -> None:
    records = [_record(mx, my, 1e-4) for mx in MASSES_X[:3] for my in MASSES_Y[:3]]
    _plot(records, tmp_path / "excluded.png")
    notes = _notes(captured[0])
    assert any("No observed contour" in note and "excluded" in note for note in notes)


def test_empty_record_list_still_plots(tmp_path: Path) -> None:
    out = tmp_path / "empty.png"
    _plot([], out)
    assert out.read_bytes().startswith(PNG_SIGNATURE)


def test_missing_grid_parameter_is_user_error(tmp_path: Path, grid: list[dict]) -> None:
    with pytest.raises(RecastError) as err:
        plotting.plot_exclusion(
            grid, "m_stop", "m_neutralino2", tmp_path / "x.png", title="t", xlabel="x", ylabel="y"
        )
    assert err.value.field == "m_stop"


def test_non_png_output_is_user_error(tmp_path: Path, grid: list[dict]) -> None:
    with pytest.raises(RecastError):
        _plot(grid, tmp_path / "exclusion.pdf")


def test_bad_level_is_user_error(tmp_path: Path, grid: list[dict]) -> None:
    with pytest.raises(RecastError) as err:
        plotting.plot_exclusion(
            grid, "m_sbottom", "m_neutralino2", tmp_path / "x.png",
            title="t", xlabel="x", ylabel="y", level=5.0,
        )
    assert err.value.field == "level"


def test_no_figures_left_open(tmp_path: Path, grid: list[dict]) -> None:
    before = set(plt.get_fignums())
    _plot(grid, tmp_path / "exclusion.png")
    assert set(plt.get_fignums()) == before


# --------------------------------------------------------------------------
# fit_plots
# --------------------------------------------------------------------------


def _tiny_workspace() -> dict[str, Any]:
    """A two-channel workspace: signal with POI mu, background with staterror."""
    return {
        "version": "1.0.0",
        "channels": [
            {
                "name": "SR",
                "samples": [
                    {
                        "name": "signal",
                        "data": [4.0, 2.0],
                        "modifiers": [
                            {"name": "mu", "type": "normfactor", "data": None},
                            {"name": "lumi", "type": "lumi", "data": None},
                        ],
                    },
                    {
                        "name": "background",
                        "data": [40.0, 25.0],
                        "modifiers": [
                            {"name": "staterror_SR", "type": "staterror", "data": [3.0, 2.5]},
                            {"name": "bkg_syst", "type": "normsys", "data": {"hi": 1.1, "lo": 0.9}},
                        ],
                    },
                ],
            },
            {
                "name": "CR",
                "samples": [
                    {
                        "name": "background",
                        "data": [200.0],
                        "modifiers": [
                            {"name": "staterror_CR", "type": "staterror", "data": [8.0]},
                            {"name": "bkg_syst", "type": "normsys", "data": {"hi": 1.1, "lo": 0.9}},
                        ],
                    }
                ],
            },
        ],
        "observations": [
            {"name": "SR", "data": [43.0, 26.0]},
            {"name": "CR", "data": [210.0]},
        ],
        "measurements": [
            {
                "name": "meas",
                "config": {
                    "poi": "mu",
                    "parameters": [
                        {"name": "lumi", "auxdata": [1.0], "sigmas": [0.02],
                         "bounds": [[0.9, 1.1]], "inits": [1.0]}
                    ],
                },
            }
        ],
    }


def test_pull_exclusions_drop_gammas_and_poi() -> None:
    model, _ = plotting._model_and_data(_tiny_workspace())
    excluded = plotting._pull_exclusions(model, model.config.par_names)
    assert set(excluded) == {"mu", "staterror_SR[0]", "staterror_SR[1]", "staterror_CR[0]"}


def test_fit_plots_invalid_workspace_is_user_error(tmp_path: Path) -> None:
    spec = _tiny_workspace()
    spec["measurements"][0]["config"]["poi"] = "not_there"
    with pytest.raises(RecastError):
        plotting.fit_plots(spec, tmp_path, label="p")


@pytest.mark.slow
def test_fit_plots_writes_reproducible_pngs(tmp_path: Path) -> None:
    before = set(plt.get_fignums())
    first = plotting.fit_plots(_tiny_workspace(), tmp_path / "a", label="sbottom 1400/550")
    second = plotting.fit_plots(_tiny_workspace(), tmp_path / "b", label="sbottom 1400/550")
    names = [path.name for path in first]
    assert names == sorted(names)
    assert names == [
        "sbottom-1400-550_CR_postfit.png",
        "sbottom-1400-550_CR_prefit.png",
        "sbottom-1400-550_SR_postfit.png",
        "sbottom-1400-550_SR_prefit.png",
        "sbottom-1400-550_pulls.png",
    ]
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == names  # PNG only, nothing else
    for path, again in zip(first, second):
        assert path.read_bytes().startswith(PNG_SIGNATURE)
        assert path.read_bytes() == again.read_bytes()
    assert set(plt.get_fignums()) == before


def test_flagged_and_failed_points_never_enter_the_contour(
    tmp_path: Path, grid: list[dict], monkeypatch: pytest.MonkeyPatch
) -> None:
    # a flagged point with a wildly different CLs must not bend the contour: only trusted points are interpolated
    grid[7]["cls_obs"] = 1e-9
    used: list[list[str]] = []
    original = plotting._draw_contours

    def spy(ax: Any, trusted: Any, level: float) -> Any:
        used.append([r["point"] for r in trusted.records])
        return original(ax, trusted, level)

    monkeypatch.setattr(plotting, "_draw_contours", spy)
    _plot(grid, tmp_path / "exclusion.png")
    trusted = [r["point"] for r in grid if r["status"] == "trusted"]
    assert used == [trusted] and grid[7]["point"] not in used[0] and grid[-1]["point"] not in used[0]
