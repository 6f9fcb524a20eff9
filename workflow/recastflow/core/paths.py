"""Where the workflow writes the results that the package itself must find again.

The rules spell their outputs in full (Snakemake style); the few result paths that package code reads
back -- a front-end point's yields, which a grid's loader names so that ``patch`` finds them -- are
spelled here once, and ``workflow/rules/common.smk`` checks at start that the rules' outputs agree.
"""

from __future__ import annotations

from pathlib import Path

#: Per-point outputs of the select rule: ``{name}`` is yields.json, cutflow.json or selected.parquet.
SELECT_OUT = "results/select/{grid}/{point}/{name}"
#: Per-point outputs of the reweight rule: ``{name}`` is yields.json or diagnostics.json.
REWEIGHT_OUT = "results/reweight/{grid}/{point}/{name}"
#: The run's verdict table (JSON, text and CSV: add the suffix), written by the verdicts rule.
VERDICTS = "results/summary/verdicts"
#: The run's HTML report.
REPORT = "results/report/index.html"


def select_yields(grid: str, point: str) -> Path:
    """The yields file the front end writes for a point made from events."""
    return Path(SELECT_OUT.format(grid=grid, point=point, name="yields.json"))


def reweight_yields(grid: str, point: str) -> Path:
    """The yields file ``recastflow reweight`` writes for a reweighted point."""
    return Path(REWEIGHT_OUT.format(grid=grid, point=point, name="yields.json"))
