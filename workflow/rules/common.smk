# Configuration, validated before any job runs, and the helpers the rules share.

import os
from pathlib import Path
from snakemake.exceptions import WorkflowError

from recastflow.bundle import load_analysis, load_grid
from recastflow.config import read_document, validate
from recastflow.errors import RecastError

# The recastflow CLI reads the run configuration file itself, so the workflow uses
# exactly one file: config/config.yaml, or the one given with --configfile, which
# replaces it (Snakemake would otherwise merge the two, and the CLI would not see that).
_CLI_CONFIGFILES = list(workflow.config_settings.configfiles)
CONFIGFILE = os.path.relpath(_CLI_CONFIGFILES[-1]) if _CLI_CONFIGFILES else "config/config.yaml"


def _load_run_config():
    try:
        if workflow.config_settings.config:
            raise RecastError(
                "command-line --config overrides are not supported: the recastflow CLI would not see them; "
                "write the run configuration to a file and pass it with --configfile",
                path=CONFIGFILE,
            )
        if len(_CLI_CONFIGFILES) > 1:
            raise RecastError("give one --configfile: the run configuration is one file", path=CONFIGFILE)
        doc = read_document(Path(CONFIGFILE))
        if not isinstance(doc, dict):
            raise RecastError("the run configuration must be a mapping of keys", path=CONFIGFILE)
        config.clear()
        config.update(doc)
        validate(config, "config", CONFIGFILE)
        signals_dir = Path(config.get("signals_dir", "config/signals"))
        analyses_dir = Path(config.get("analyses_dir", "config/analyses"))
        grids = {name: load_grid(name, signals_dir) for name in config["grids"]}
        analyses = {g.analysis: load_analysis(g.analysis, analyses_dir) for g in grids.values()}
        for g in grids.values():
            analyses[g.analysis].workspace(g.workspace, source=g.path)
        if any(g.events is not None for g in grids.values()):
            from recastflow.frontend import check_front_end

            # cards, spectra, manifests and the selection: a mistake stops the run before any event is made
            for g in grids.values():
                check_front_end(g, analyses[g.analysis])
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
# grids whose front-end yields are compared with the bundle's published signal patches
YIELD_CHECK_GRIDS = sorted(
    name for name, g in GRIDS.items()
    if config.get("checks", True) and ANALYSES[g.analysis].yield_references is not None
    and any(p.from_events and ANALYSES[g.analysis].yield_references.for_values(p.values) for p in g.points)
)
YIELD_CHECK_OUTPUTS = expand("results/check/yields/{grid}.txt", grid=YIELD_CHECK_GRIDS)


wildcard_constraints:
    chunk=r"\d+",
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


# -- front end: which files each stage of a point reads --------------------------------
def _point(wildcards):
    grid = GRIDS[wildcards.grid]
    return grid, grid.point(wildcards.point)


def _manifest_format(point):
    """The 'format' of a hand-off manifest ('' if unreadable: the handoff job then reports why)."""
    try:
        doc = read_document(point.manifest)
    except RecastError:
        return ""
    return doc.get("format", "") if isinstance(doc, dict) else ""


def process_card(wildcards):
    return str(GRIDS[wildcards.grid].events.process)


def generation_settings(wildcards):
    """Events of this chunk, chunk count and base seed: a change must regenerate the chunk."""
    from recastflow.seeds import chunk_sizes

    grid, point = _point(wildcards)
    sizes = chunk_sizes(point.n_events, grid.events.chunks)
    n = sizes[int(wildcards.chunk)] if int(wildcards.chunk) < len(sizes) else 0
    return f"events={n} chunks={grid.events.chunks} seed={grid.events.seed}"


def slha_of(wildcards):
    return str(_point(wildcards)[1].slha)


def detector_card(wildcards):
    return str(GRIDS[wildcards.grid].events.detector)


def selection_file(wildcards):
    return str(ANALYSES[GRIDS[wildcards.grid].analysis].selection)


def handoff_inputs(wildcards):
    """The manifest and the event file it names (so that replacing either re-runs the job)."""
    point = _point(wildcards)[1]
    files = [str(point.manifest)]
    try:
        doc = read_document(point.manifest)
        if isinstance(doc, dict) and isinstance(doc.get("file"), str):
            files.append(str(point.manifest.parent / doc["file"]))
    except RecastError:
        pass
    return files


def particle_events(wildcards):
    grid, point = _point(wildcards)
    if point.manifest is not None:
        return f"results/generate/{grid.name}/{point.name}/handoff.parquet"
    return f"results/generate/{grid.name}/{point.name}/chunk{wildcards.chunk}.parquet"


def reco_events(wildcards):
    """All reconstructed chunks of a point; Delphes hand-off files are already reconstructed."""
    grid, point = _point(wildcards)
    if point.manifest is not None:
        if _manifest_format(point) == "delphes":
            return [f"results/generate/{grid.name}/{point.name}/handoff.parquet"]
        return [f"results/emulate/{grid.name}/{point.name}/chunk0.parquet"]
    return [f"results/emulate/{grid.name}/{point.name}/chunk{i}.parquet" for i in range(grid.events.chunks)]


def grid_yields(wildcards):
    grid = GRIDS[wildcards.grid]
    return [str(p.yields) for p in grid.points if p.from_events]


FRONT_END_CUTFLOWS = [
    str(p.yields.with_name("cutflow.json")) for g in GRIDS.values() for p in g.points if p.from_events
]


def front_end_cutflows(wildcards):
    return FRONT_END_CUTFLOWS


def workspace_of(wildcards):
    grid = GRIDS[wildcards.grid]
    return str(ANALYSES[grid.analysis].workspaces[grid.workspace].path)


def point_results(wildcards):
    return [f"results/limits/{wildcards.grid}/points/{p.name}.json" for p in GRIDS[wildcards.grid].points]


def analysis_tables(wildcards):
    return [f"results/limits/{g}/limits.json" for g, grid in GRIDS.items() if grid.analysis == wildcards.analysis]


def upper_limit_flag(wildcards):
    return "--upper-limit" if (wildcards.grid, wildcards.point) in UPPER_LIMITS else ""


# Container image of each stage, pinned by digest in containers/lock.yaml (written by
# containers/build.sh). Used with --sdm apptainer. A lock that exists is checked on every start;
# without one, only a container run (--sdm apptainer) is refused.
CONTAINER_LOCK = "containers/lock.yaml"


def _load_container_lock():
    import re
    import yaml
    from snakemake.settings.types import DeploymentMethod

    def fail(msg):
        raise WorkflowError(f"recastflow: container lock error: {CONTAINER_LOCK}: {msg}")

    if not Path(CONTAINER_LOCK).is_file():
        if DeploymentMethod.APPTAINER in workflow.deployment_settings.deployment_method:
            fail("missing; run containers/build.sh to build the images and write it")
        return None
    try:
        doc = yaml.safe_load(Path(CONTAINER_LOCK).read_text())
    except yaml.YAMLError as exc:
        fail(f"not valid YAML ({' '.join(str(exc).split())})")
    stages = doc.get("stages") if isinstance(doc, dict) else None
    if not isinstance(stages, dict):
        fail("no 'stages' mapping (stage: image@sha256:<digest>)")
    for stage, ref in stages.items():
        if not isinstance(ref, str) or not re.fullmatch(r"[a-z0-9][a-z0-9._/:-]*@sha256:[0-9a-f]{64}", ref):
            fail(f"stage {stage!r}: {ref!r} is not an image reference pinned by @sha256:<64 hex digits>")
    return stages


CONTAINER_STAGES = _load_container_lock()


def stage_container(stage):
    """Image for the rules of a stage, from the lock, as docker://<image>@sha256:<digest>."""
    if CONTAINER_STAGES is None:
        return None
    if stage not in CONTAINER_STAGES:
        raise WorkflowError(
            f"recastflow: container lock error: {CONTAINER_LOCK}: no image for stage {stage!r}; "
            "run containers/build.sh to rewrite it"
        )
    return f"docker://{CONTAINER_STAGES[stage]}"
