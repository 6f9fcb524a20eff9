# Configuration, validated before any job runs, and the helpers the rules share.

import copy
import os
import re
import shlex
from pathlib import Path
from snakemake.exceptions import WorkflowError

from recastflow.analyses.bundle import load_analysis, load_grid, shared_samples
from recastflow.core.config import read_document, schema, validate
from recastflow.core.errors import RecastError
from recastflow.core.paths import REWEIGHT_OUT, SELECT_OUT
from recastflow.core.pointref import PointRef
from recastflow.core.settings import schema_default

# The run configuration is read and validated here, once, when the workflow starts; jobs get the
# settings they need as options (SETTINGS_ARGS, LIMITS_ARGS, ...) and never read the file again.
# config/config.yaml, or the one given with --configfile, which replaces it (Snakemake would
# otherwise merge the two); Snakemake --config key=value overrides apply on top and are validated
# like the file.
_CLI_CONFIGFILES = list(workflow.config_settings.configfiles)
CONFIGFILE = os.path.relpath(_CLI_CONFIGFILES[-1]) if _CLI_CONFIGFILES else "config/config.yaml"


#: A number as a physicist writes it (1e-6, 1.0e-6, 100): what the run configuration's YAML reads as one.
_NUMBER = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")


def _number(value):
    """A --config value Snakemake left as text inside a mapping (fit={timeout_s: 1.0e-6}) that is a number: the number."""
    if isinstance(value, str) and _NUMBER.fullmatch(value.strip()):
        text = value.strip()
        return int(text) if text.lstrip("+-").isdigit() else float(text)
    return value


def _merged(base, overrides):
    """``base`` with ``overrides`` applied as Snakemake applies --config: mappings merge, the rest replaces."""
    out = dict(base)
    for key, value in overrides.items():
        if isinstance(value, dict):
            value = {k: _number(v) for k, v in value.items()}
        out[key] = _merged(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def _load_run_config():
    try:
        if len(_CLI_CONFIGFILES) > 1:
            raise RecastError("give one --configfile: the run configuration is one file", path=CONFIGFILE)
        doc = read_document(Path(CONFIGFILE))
        if not isinstance(doc, dict):
            raise RecastError("the run configuration must be a mapping of keys", path=CONFIGFILE)
        overrides = dict(workflow.config_settings.config or {})
        # messages about an override name it as such, not the file it does not come from
        source = CONFIGFILE + (f" with --config {' '.join(sorted(overrides))}" if overrides else "")
        config.clear()
        config.update(_merged(doc, overrides))
        validate(config, "config", source)
        # the schema's defaults, filled in once here, so that the rules read every setting from one place
        for key, sub in schema("config")["properties"].items():
            if "default" in sub:
                config.setdefault(key, copy.deepcopy(sub["default"]))
        config.setdefault("grids", [])
        signals_dir = Path(config["signals_dir"])
        analyses_dir = Path(config["analyses_dir"])
        grids = {name: load_grid(name, signals_dir, analyses_dir) for name in config["grids"]}
        analyses = {g.analysis: load_analysis(g.analysis, analyses_dir) for g in grids.values()}
        for g in grids.values():
            analyses[g.analysis].workspace(g.workspace, source=g.path)
        if any(g.events is not None for g in grids.values()):
            from recastflow.checks.preflight import check_front_end

            # cards, spectra, manifests and the selection: a mistake stops the run before any event is made
            for g in grids.values():
                check_front_end(g, analyses[g.analysis])
        if any(p.reweight is not None for g in grids.values() for p in g.points):
            from recastflow.reweight.reweighting import check_reweighted

            # sources, specs and parameters of reweighted points: a mistake stops the run up front
            check_reweighted(grids)
        selected = {key: _selected(key, grids, source) for key in ("upper_limits", "fit_plots")}
        adaptive = _load_adaptive(analyses_dir)
        if adaptive is not None:
            analyses.setdefault(adaptive.analysis.id, adaptive.analysis)
    except RecastError as exc:
        raise WorkflowError(f"recastflow: configuration error: {exc}") from None
    return grids, analyses, selected, adaptive


def _load_adaptive(analyses_dir):
    """The adaptive scan of the run ('adaptive'), read and checked whole before any job runs; or None."""
    section = config.get("adaptive")
    if section is None:
        return None
    from recastflow.adaptive.jobs import load_run

    section.setdefault("detector", schema_default("adaptive", "detector"))
    section.setdefault("seed", schema_default("adaptive", "seed"))
    return load_run(Path(section["scan"]), analysis=section["analysis"], workspace=section["workspace"],
                    process=Path(section["process"]), detector=Path(section["detector"]), seed=section["seed"],
                    cl=config["cl"], analyses_dir=analyses_dir)


def _selected(key, grids, source):
    """The (grid, point) pairs of a config list of '<grid>/<point>' entries, '<grid>/*' expanded."""
    out = set()
    for entry in config.get(key, []):
        ref = PointRef.parse(entry, source=source, field=key)
        if ref.grid not in grids:
            raise RecastError(f"grid {ref.grid!r} is not in 'grids'", path=source, field=key)
        names = [p.name for p in grids[ref.grid].points]
        if not ref.whole_grid and ref.point not in names:
            raise RecastError(f"grid {ref.grid} has no point {ref.point!r}", path=source, field=key)
        out.update((ref.grid, n) for n in ref.expand(names))
    return out


GRIDS, ANALYSES, _SELECTED, ADAPTIVE = _load_run_config()


def _args(*pairs):
    """Command-line options from (option, value) pairs, each value quoted for the shell; None values left out."""
    out = []
    for option, value in pairs:
        if value is not None:
            out += [option, shlex.quote(str(value))]
    return " ".join(out)


# The settings every job needs: where bundles and grids live and which outside folders are allowed.
SETTINGS_ARGS = _args(("--analyses-dir", config["analyses_dir"]), ("--signals-dir", config["signals_dir"]),
                      *(("--allowed-path", p) for p in config["allowed_paths"]))
# The settings of the limits jobs (CLs, methods, fit options) and of the table job (the CL of the contours).
FIT_ARGS = _args(*((f"--{key}", config["limits"].get(key, schema_default("limits", key)))
                   for key in ("method", "fallback", "verify")),
                 ("--fit-maxiter", config["fit"].get("maxiter")), ("--fit-tolerance", config["fit"].get("tolerance")),
                 ("--fit-timeout", config["fit"].get("timeout_s")))
LIMITS_ARGS = f"{_args(('--cl', config['cl']))} {FIT_ARGS}"
TABLE_ARGS = _args(("--cl", config["cl"]))
UPPER_LIMITS = _SELECTED["upper_limits"]
FIT_PLOTS = sorted(_SELECTED["fit_plots"])
CHECKED_ANALYSES = sorted(
    a.id for a in ANALYSES.values() if config.get("checks", True) and any(r.grid in GRIDS for r in a.references)
)
CHECK_OUTPUTS = expand("results/check/{analysis}.txt", analysis=CHECKED_ANALYSES)
CHECK_JSONS = expand("results/check/{analysis}.json", analysis=CHECKED_ANALYSES)
# grids whose front-end yields are compared with the bundle's published signal patches
YIELD_CHECK_GRIDS = sorted(
    name for name, g in GRIDS.items()
    if config.get("checks", True) and g.check_yields and ANALYSES[g.analysis].references_for(g.workspace) is not None
    and any(p.from_events and ANALYSES[g.analysis].references_for(g.workspace).for_values(p.values) for p in g.points)
)
# the tables, and the verdicts that fail the run at its end if a yield check failed (rule check_yields_verdict)
YIELD_CHECK_OUTPUTS = expand("results/check/yields/{grid}.{ext}", grid=YIELD_CHECK_GRIDS, ext=("txt", "passed"))
YIELD_CHECK_JSONS = expand("results/check/yields/{grid}.json", grid=YIELD_CHECK_GRIDS)
YIELD_CHECK_PLOTS = expand("results/check/yields/{grid}.png", grid=YIELD_CHECK_GRIDS)
YIELD_CHECK_PDFS = expand("results/check/yields/{grid}.pdf", grid=YIELD_CHECK_GRIDS)
YIELD_CHECK_SUMMARY_PLOTS = expand("results/check/yields/{grid}.summary.png", grid=YIELD_CHECK_GRIDS)
YIELD_CHECK_SUMMARY_PDFS = expand("results/check/yields/{grid}.summary.pdf", grid=YIELD_CHECK_GRIDS)


wildcard_constraints:
    chunk=r"\d+",
    grid=r"[A-Za-z0-9][A-Za-z0-9_.-]*",
    point=r"[A-Za-z0-9][A-Za-z0-9_.-]*",
    sample=r"[A-Za-z0-9][A-Za-z0-9_.-]*",
    detector=r"[A-Za-z0-9][A-Za-z0-9_.-]*",
    analysis=r"[A-Za-z0-9][A-Za-z0-9_.-]*",
    batch=r"b[0-9][0-9][0-9]+",
    round=r"\d+",


def fetched(analysis_id):
    """The fetch step's manifest of a bundle: jobs that read its published files wait for it."""
    return f"results/fetch/{analysis_id}.json"


def _published(analysis, path):
    """A path in the fetch cache stands for the bundle's fetch manifest (the cache is not the run's to track)."""
    from recastflow.analyses.fetch import cache_dir

    return fetched(analysis.id) if Path(path).is_relative_to(cache_dir()) else str(path)


def fetched_of(wildcards):
    """The fetch manifest of a grid's bundle, if the bundle has published sources (else nothing)."""
    analysis = ANALYSES[GRIDS[wildcards.grid].analysis]
    return [fetched(analysis.id)] if analysis.sources else []


def grid_inputs(wildcards):
    """Every file a grid's PatchSet is built from: grid, bundle, workspace, patches or yields."""
    grid = GRIDS[wildcards.grid]
    analysis = ANALYSES[grid.analysis]
    files = [str(grid.path), str(analysis.folder / "analysis.yaml"),
             _published(analysis, analysis.workspaces[grid.workspace].path)]
    files += [_published(analysis, p.patch or p.yields) for p in grid.points if (p.patch or p.yields)]
    if grid.patchset:
        files.append(_published(analysis, grid.patchset))
    return sorted(set(files), key=files.index)


# -- front end: which files each stage of a point reads --------------------------------
# Generation and emulation are per event sample (events.sample, default the grid's name), so that grids
# sharing a sample -- one model run through several analyses -- generate each point once and emulate it
# once per detector card; each grid's selection then reads the shared events.
try:
    SAMPLES = shared_samples(GRIDS)
except RecastError as exc:
    raise WorkflowError(f"recastflow: configuration error: {exc}") from None


def _point(wildcards):
    grid = GRIDS[wildcards.grid]
    return grid, grid.point(wildcards.point)


def _generator(wildcards):
    """The grid whose settings make a sample's point (generation and hand-off jobs)."""
    grid = GRIDS[SAMPLES.generators[(wildcards.sample, wildcards.point)]]
    return grid, grid.point(wildcards.point)


def generator_grid(wildcards):
    return _generator(wildcards)[0].name


def emulator_grid(wildcards):
    return SAMPLES.emulators[(wildcards.sample, wildcards.detector, wildcards.point)]


def _manifest_format(point):
    """The 'format' of a hand-off manifest ('' if unreadable: the handoff job then reports why)."""
    try:
        doc = read_document(point.manifest)
    except RecastError:
        return ""
    return doc.get("format", "") if isinstance(doc, dict) else ""


def process_card(wildcards):
    return str(_generator(wildcards)[0].events.process)


def generation_settings(wildcards):
    """Events of this chunk, chunk count and base seed: a change must regenerate the chunk."""
    from recastflow.core.seeds import chunk_sizes

    grid, point = _generator(wildcards)
    sizes = chunk_sizes(point.n_events, grid.events.chunks)
    n = sizes[int(wildcards.chunk)] if int(wildcards.chunk) < len(sizes) else 0
    return f"events={n} chunks={grid.events.chunks} seed={grid.events.seed}"


def slha_of(wildcards):
    return str(_generator(wildcards)[1].slha)


def detector_card(wildcards):
    return str(GRIDS[emulator_grid(wildcards)].events.detector)


def selection_file(wildcards):
    grid = GRIDS[wildcards.grid]
    return str(ANALYSES[grid.analysis].selection_for(grid.workspace))


def handoff_inputs(wildcards):
    """The manifest and the event file it names (so that replacing either re-runs the job)."""
    point = _generator(wildcards)[1]
    files = [str(point.manifest)]
    try:
        doc = read_document(point.manifest)
        if isinstance(doc, dict) and isinstance(doc.get("file"), str):
            files.append(str(point.manifest.parent / doc["file"]))
    except RecastError:
        pass
    return files


GENERATE_OUT = "results/generate/{sample}/{point}/{name}"
EMULATE_OUT = "results/emulate/{sample}/{detector}/{point}/{name}"


def particle_events(wildcards):
    grid, point = _generator(wildcards)
    name = "handoff.parquet" if point.manifest is not None else f"chunk{wildcards.chunk}.parquet"
    return GENERATE_OUT.format(sample=wildcards.sample, point=point.name, name=name)


def reco_events(wildcards):
    """All reconstructed chunks of a grid's point (from its sample); Delphes hand-off files are already reconstructed."""
    grid, point = _point(wildcards)
    sample, detector = grid.events.sample, SAMPLES.detector_key(grid)
    if point.manifest is not None:
        if _manifest_format(point) == "delphes":
            return [GENERATE_OUT.format(sample=sample, point=point.name, name="handoff.parquet")]
        return [EMULATE_OUT.format(sample=sample, detector=detector, point=point.name, name="chunk0.parquet")]
    return [EMULATE_OUT.format(sample=sample, detector=detector, point=point.name, name=f"chunk{i}.parquet")
            for i in range(grid.events.chunks)]


# Where the front end's per-point results go: SELECT_OUT and REWEIGHT_OUT (recastflow.core.paths) are the
# select and reweight rules' outputs as the grids' loader spells them; checked here against each other.


def _check_result_paths():
    """The grids' loader names each front-end point's yields file too; it must be the rule's output."""
    for g in GRIDS.values():
        for p in g.points:
            pattern = SELECT_OUT if p.from_events else REWEIGHT_OUT if p.reweight is not None else None
            if pattern is not None and str(p.yields) != pattern.format(grid=g.name, point=p.name, name="yields.json"):
                raise WorkflowError(
                    f"recastflow: {g.path}: point {p.name}: its yields are read from {p.yields}, but the rules "
                    f"write them to {pattern.format(grid=g.name, point=p.name, name='yields.json')}"
                )


_check_result_paths()


def grid_yields(wildcards):
    grid = GRIDS[wildcards.grid]
    return [SELECT_OUT.format(grid=grid.name, point=p.name, name="yields.json") for p in grid.points if p.from_events]


FRONT_END_CUTFLOWS = [
    SELECT_OUT.format(grid=g.name, point=p.name, name="cutflow.json") for g in GRIDS.values() for p in g.points
    if p.from_events
]


def front_end_cutflows(wildcards):
    return FRONT_END_CUTFLOWS


# -- reweighting: reweighted points' yields come from another point's selected events ---
REWEIGHTED = sorted((g.name, p.name) for g in GRIDS.values() for p in g.points if p.reweight is not None)
REWEIGHT_DIAGNOSTICS = [REWEIGHT_OUT.format(grid=g, point=p, name="diagnostics.json") for g, p in REWEIGHTED]
# grids with reweighted points that name a directly generated point: their closure is checked
REWEIGHT_CHECK_GRIDS = sorted(
    {g for g, p in REWEIGHTED if config.get("checks", True) and GRIDS[g].point(p).reweight.compare_with}
)
REWEIGHT_CHECK_OUTPUTS = expand("results/check/reweight/{grid}.txt", grid=REWEIGHT_CHECK_GRIDS)
REWEIGHT_CHECK_JSONS = expand("results/check/reweight/{grid}.json", grid=REWEIGHT_CHECK_GRIDS)


def _reweight_ref(wildcards):
    ref = _point(wildcards)[1].reweight
    if ref is None:
        raise WorkflowError(f"recastflow: {wildcards.grid}/{wildcards.point} has no 'reweight' section")
    return ref


def reweight_source(wildcards):
    """The selected events of the point a reweighted point is made from."""
    grid, point = _reweight_ref(wildcards).source
    return SELECT_OUT.format(grid=grid, point=point, name="selected.parquet")


def reweight_spec(wildcards):
    return str(_reweight_ref(wildcards).spec)


def reweight_settings(wildcards):
    """Source and parameter values: a change must reweight again."""
    ref = _reweight_ref(wildcards)
    values = GRIDS[wildcards.grid].point(wildcards.point).values
    return f"from={'/'.join(ref.source)} parameters={sorted(ref.parameters.items())} values={sorted(values.items())}"


def reweight_closure_inputs(wildcards):
    """Yields of the grid's reweighted points that name a direct sample, and of those samples."""
    files = []
    for p in GRIDS[wildcards.grid].points:
        if p.reweight is not None and p.reweight.compare_with is not None:
            direct_grid, direct_point = p.reweight.compare_with
            files += [str(p.yields), str(GRIDS[direct_grid].point(direct_point).yields)]
    return files


def reweight_diagnostics(wildcards):
    return REWEIGHT_DIAGNOSTICS


def workspace_of(wildcards):
    grid = GRIDS[wildcards.grid]
    analysis = ANALYSES[grid.analysis]
    return _published(analysis, analysis.workspaces[grid.workspace].path)


# Limits run in batches of points: each job compiles the grid's likelihood once (method fast) and
# a grid of a thousand points is a few dozen jobs, not a thousand.
POINTS_PER_JOB = config["limits"].get("points_per_job", schema_default("limits", "points_per_job"))
LIMIT_BATCHES = {
    name: {f"b{i // POINTS_PER_JOB:03d}": [p.name for p in g.points[i:i + POINTS_PER_JOB]]
           for i in range(0, len(g.points), POINTS_PER_JOB)}
    for name, g in GRIDS.items()
}


def batch_points(wildcards):
    return " ".join(LIMIT_BATCHES[wildcards.grid][wildcards.batch])


def batch_upper_limits(wildcards):
    # passed even when empty: the job computes upper limits for exactly these points
    return " ".join(n for n in LIMIT_BATCHES[wildcards.grid][wildcards.batch] if (wildcards.grid, n) in UPPER_LIMITS)


def batch_diagnostics(wildcards):
    """The reweighting diagnostics of the batch's reweighted points: a flagged reweighting flags the point."""
    grid = GRIDS[wildcards.grid]
    return [REWEIGHT_OUT.format(grid=grid.name, point=n, name="diagnostics.json")
            for n in LIMIT_BATCHES[wildcards.grid][wildcards.batch] if grid.point(n).reweight is not None]


def batch_results(wildcards):
    return [f"results/limits/{wildcards.grid}/batches/{b}.json" for b in LIMIT_BATCHES[wildcards.grid]]


def analysis_tables(wildcards):
    return [f"results/limits/{g}/limits.json" for g, grid in GRIDS.items() if grid.analysis == wildcards.analysis]




# Container image of each stage, pinned by digest in containers/lock.yaml (written by
# containers/build.sh). Used with --sdm apptainer. A lock that exists is checked on every start;
# without one, only a container run (--sdm apptainer) is refused.
CONTAINER_LOCK = os.path.relpath(os.path.join(workflow.basedir, "containers", "lock.yaml"))


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


# ML models, for the check_models job: the validation vectors of every model declared in a selection file
# (config/models/<bundle>/selection.yaml), re-run with the installed onnxruntime; a score that
# moved beyond its tolerance fails the run, naming the largest deviation. Milliseconds per model.

MODEL_BUNDLES = sorted(p.parent.name for p in Path("config/models").glob("*/selection.yaml"))
MODEL_CHECK_OUTPUTS = (
    expand("results/check/models/{bundle}.txt", bundle=MODEL_BUNDLES) if config.get("checks", True) else []
)
MODEL_CHECK_JSONS = (
    expand("results/check/models/{bundle}.json", bundle=MODEL_BUNDLES) if config.get("checks", True) else []
)


def model_check_inputs(wildcards):
    """The selection file, and every model, scaling and vectors file beside it."""
    folder = Path("config/models") / wildcards.bundle
    return sorted(str(p) for p in folder.rglob("*") if p.is_file() and p.suffix in (".yaml", ".onnx", ".json"))


# The verdict table, printed by the Snakefile's onsuccess handler.
def print_run_summary():
    """The verdict table and where the report is, at the end of a successful run (Snakemake onsuccess)."""
    verdicts = Path("results/summary/verdicts.txt")
    if verdicts.is_file():
        print(f"\n{verdicts.read_text()}", end="")
    # each yield check's result and fidelity line: how far the front end is from the published signal
    from recastflow.run.summary import yield_check_lines

    for line in yield_check_lines([Path(t) for t in expand("results/check/yields/{grid}.txt", grid=YIELD_CHECK_GRIDS)]):
        print(line)
    page = Path("results/report/index.html")
    if page.is_file():
        print(f"report: {page.resolve()}")


# -- adaptive scan (config 'adaptive'): points and chunks decided as the run goes ------------------------
# A point's chunk k is followed by its decision k (checkpoint adaptive_decide); the point is done at the
# first decision that says stop. A round's points done, the checkpoint adaptive_round names the next
# round's points. The input functions below walk these files, so Snakemake adds the jobs they need as the
# checkpoints finish, and a resumed run finds the files a killed one left.
ADAPTIVE_OUT = "results/adaptive/points/{point}/{name}"
ADAPTIVE_ROUND = "results/adaptive/rounds/round{round}.json"
ADAPTIVE_ARGS = _args(
    *((f"--{key}", (config.get("adaptive") or {}).get(key)) for key in ("scan", "analysis", "workspace", "process",
                                                                         "detector", "seed")),
    ("--cl", config["cl"]),
)
ADAPTIVE_SUMMARY = {"scan": "results/adaptive/scan.json", "table": "results/adaptive/scan.csv",
                    "plot": "results/adaptive/scan.png"}
ADAPTIVE_TARGETS = list(ADAPTIVE_SUMMARY.values()) if ADAPTIVE is not None else []


def _read_json(path):
    import json

    with open(path) as f:
        return json.load(f)


def adaptive_scan_file(wildcards):
    return config["adaptive"]["scan"]


def adaptive_chunks(wildcards):
    """The reconstructed chunks 0..k a point's decision k selects."""
    return [ADAPTIVE_OUT.format(point=wildcards.point, name=f"emulate/chunk{i}.parquet")
            for i in range(int(wildcards.chunk) + 1)]


def adaptive_selection(wildcards):
    """The selection the scan's workspace is filled with (a change decides every point again)."""
    return str(ADAPTIVE.analysis.selection_for(ADAPTIVE.workspace))


def adaptive_published(wildcards):
    """The fetch manifest of the scan's bundle (its likelihood is published), or nothing."""
    return [fetched(ADAPTIVE.analysis.id)] if ADAPTIVE.analysis.sources else []


def _final_decision(point):
    """A point's last decision: the first that says stop, from the minimum's chunk on."""
    chunk = ADAPTIVE.spec.min_chunks - 1
    while True:
        path = checkpoints.adaptive_decide.get(point=point, chunk=chunk).output.decision
        if _read_json(path)["stop"] or chunk + 1 >= ADAPTIVE.spec.max_chunks:
            return path
        chunk += 1


def _round_points(index):
    """The points of a round: the coarse grid's, or those the round before named."""
    if index == 0:
        return [p.name for p in ADAPTIVE.scan.points]
    return _read_json(checkpoints.adaptive_round.get(round=index - 1).output.round)["next"]


def adaptive_earlier_rounds(wildcards):
    return [ADAPTIVE_ROUND.format(round=k) for k in range(int(wildcards.round))]


def _final_decisions(points):
    """The final decisions of several points. Points still deciding are asked for all at once: raising at the
    first would let Snakemake see one point's next chunk at a time, and the points would run one by one."""
    from snakemake.exceptions import IncompleteCheckpointException

    done, pending = [], []
    for point in points:
        try:
            done.append(_final_decision(point))
        except IncompleteCheckpointException as exc:
            pending.append(exc.targetfile)
    if pending:
        raise IncompleteCheckpointException(checkpoints.adaptive_decide.rule, pending)
    return done


def adaptive_round_decisions(wildcards):
    """The final decisions of every point of rounds 0..round."""
    return _final_decisions([p for k in range(int(wildcards.round) + 1) for p in _round_points(k)])


def _last_round():
    index = 0
    while not _read_json(checkpoints.adaptive_round.get(round=index).output.round)["done"]:
        index += 1
    return index


def adaptive_all_rounds(wildcards):
    return [ADAPTIVE_ROUND.format(round=k) for k in range(_last_round() + 1)]


def adaptive_all_decisions(wildcards):
    return _final_decisions([p for k in range(_last_round() + 1) for p in _round_points(k)])
