# Configuration, validated before any job runs, and the helpers the rules share.

from pathlib import Path
from snakemake.exceptions import WorkflowError

from recastflow.bundle import load_analysis, load_grid
from recastflow.config import read_document, validate
from recastflow.errors import RecastError

# The CLI reads the same file the workflow was started with, so results never
# depend on overrides it cannot see.
CONFIGFILE = str(workflow.configfiles[-1])


def _load_run_config():
    try:
        validate(config, "config", CONFIGFILE)
        if read_document(Path(CONFIGFILE)) != config:
            raise RecastError(
                "command-line --config overrides are not supported: the recastflow CLI would not see them; "
                "write the run configuration to a file and pass it with --configfile",
                path=CONFIGFILE,
            )
        signals_dir = Path(config.get("signals_dir", "config/signals"))
        analyses_dir = Path(config.get("analyses_dir", "config/analyses"))
        grids = {name: load_grid(name, signals_dir) for name in config["grids"]}
        analyses = {g.analysis: load_analysis(g.analysis, analyses_dir) for g in grids.values()}
        for g in grids.values():
            analyses[g.analysis].workspace(g.workspace, source=g.path)
    except RecastError as exc:
        raise WorkflowError(f"recastflow: configuration error: {exc}") from None
    return grids, analyses


GRIDS, ANALYSES = _load_run_config()


def _selected(key):
    """'<grid>/<point>' entries of a config list, with '<grid>/*' expanded."""
    out = set()
    for entry in config.get(key, []):
        gname, pname = entry.split("/")
        if gname not in GRIDS:
            raise WorkflowError(f"recastflow: configuration error: {CONFIGFILE}: {key}: grid {gname!r} is not in 'grids'")
        names = [p.name for p in GRIDS[gname].points]
        if pname != "*" and pname not in names:
            raise WorkflowError(
                f"recastflow: configuration error: {CONFIGFILE}: {key}: grid {gname} has no point {pname!r}"
            )
        out.update((gname, n) for n in (names if pname == "*" else [pname]))
    return out


UPPER_LIMITS = _selected("upper_limits")
FIT_PLOTS = sorted(_selected("fit_plots"))
CHECKED_ANALYSES = sorted(
    a.id for a in ANALYSES.values() if config.get("checks", True) and any(r.grid in GRIDS for r in a.references)
)
CHECK_OUTPUTS = expand("results/check/{analysis}.txt", analysis=CHECKED_ANALYSES)


wildcard_constraints:
    grid=r"[A-Za-z0-9][A-Za-z0-9_.-]*",
    point=r"[A-Za-z0-9][A-Za-z0-9_.-]*",
    analysis=r"[A-Za-z0-9][A-Za-z0-9_.-]*",


def grid_inputs(wildcards):
    """Every file a grid's PatchSet is built from: grid, bundle, workspace, patches or yields."""
    grid = GRIDS[wildcards.grid]
    analysis = ANALYSES[grid.analysis]
    files = [str(grid.path), str(analysis.folder / "analysis.yaml"), str(analysis.workspaces[grid.workspace].path)]
    files += [str(p.patch or p.yields) for p in grid.points if (p.patch or p.yields)]
    if grid.patchset:
        files.append(str(grid.patchset))
    return files


def workspace_of(wildcards):
    grid = GRIDS[wildcards.grid]
    return str(ANALYSES[grid.analysis].workspaces[grid.workspace].path)


def point_results(wildcards):
    return [f"results/limits/{wildcards.grid}/points/{p.name}.json" for p in GRIDS[wildcards.grid].points]


def analysis_tables(wildcards):
    return [f"results/limits/{g}/limits.json" for g, grid in GRIDS.items() if grid.analysis == wildcards.analysis]


def upper_limit_flag(wildcards):
    return "--upper-limit" if (wildcards.grid, wildcards.point) in UPPER_LIMITS else ""
