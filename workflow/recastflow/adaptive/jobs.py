"""The jobs of an adaptive scan: a point's spectrum, its chunks, its decisions, the rounds and the summary.

Every job is a function of its named inputs and the run's settings (:class:`AdaptiveRun`), so that the
workflow's checkpoints (``workflow/rules/adaptive.smk``) can be resumed after a kill and give the same bytes:

- :func:`write_spectrum` -- the SLHA file of a point, named ``<scan>_<v1>_<v2>`` as in a plain scan;
- :func:`generate` and :func:`emulate` -- chunk ``k`` of a point, seeded as chunk ``k`` of a plain run of
  ``max_events`` in ``max_events / chunk`` chunks (an adaptive point's events are the first chunks of the
  plain point's);
- :func:`decide_point` -- after chunk ``k``: select chunks ``0..k``, patch the signal into the published
  likelihood, CLs as selected and scaled by ``1 - z delta`` or ``1 + z delta``, and the stopping rule
  (:mod:`recastflow.adaptive.stopping`);
- :func:`next_round` -- after a round's points are decided: the cells to split and the next round's points
  (:mod:`recastflow.adaptive.refine`);
- :func:`summarise` -- every point with its round, events and verdict; the observed and expected contours.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from recastflow.adaptive.refine import Cell, Outcome, Split, coarse_cells, refine
from recastflow.adaptive.spec import AdaptiveSpec, adaptive_spec, fixed_values, plane_axes
from recastflow.adaptive.stopping import Evidence, decide, needed_scales, scales
from recastflow.core.errors import RecastError
from recastflow.core.io import write_json_atomic, write_text_atomic
from recastflow.core.seeds import derive_seed
from recastflow.generate.scan import Scan, ScanPoint, admits, load_scan, new_point, point_name

__all__ = [
    "DECISION_FORMAT",
    "ROUND_FORMAT",
    "AdaptiveRun",
    "decide_point",
    "emulate",
    "generate",
    "load_run",
    "next_round",
    "parse_point",
    "summarise",
    "write_spectrum",
]

DECISION_FORMAT = "recastflow-adaptive-decision/1"
ROUND_FORMAT = "recastflow-adaptive-round/1"
SUMMARY_FORMAT = "recastflow-adaptive-scan/1"

Log = Callable[[str], None]


@dataclass(frozen=True)
class AdaptiveRun:
    """An adaptive scan through one analysis workspace, as the run configuration's ``adaptive`` section names it.

    Attributes:
        scan: the scan (coarse grid, constraints, model).
        spec: its ``adaptive`` section.
        analysis: the bundle.
        workspace: the bundle's workspace the signal goes into.
        process: the process card.
        detector: the detector card.
        seed: the base seed.
        cl: the confidence level of the exclusion.
    """

    scan: Scan
    spec: AdaptiveSpec
    analysis: Any
    workspace: str
    process: Path
    detector: Path
    seed: int
    cl: float


def load_run(
    scan: Path,
    *,
    analysis: str,
    workspace: str,
    process: Path,
    detector: Path,
    seed: int,
    cl: float,
    analyses_dir: Path,
) -> AdaptiveRun:
    """Read and check everything an adaptive scan needs before any job runs.

    Args:
        scan: the scan file (with an ``adaptive`` section).
        analysis: the bundle's identifier.
        workspace: the bundle's workspace.
        process: the process card.
        detector: the detector card.
        seed: the base seed.
        cl: the confidence level.
        analyses_dir: where bundles live.

    Raises:
        RecastError: one line naming the file and field at fault.
    """
    from recastflow.analyses.bundle import load_analysis
    from recastflow.emulate.card import load_card as load_detector
    from recastflow.generate.pythia import load_card as load_process
    from recastflow.generate.scan import check_xsec_source

    spec_scan = load_scan(Path(scan))
    spec = adaptive_spec(spec_scan)
    bundle = load_analysis(analysis, Path(analyses_dir), named_in=scan, named_by="analysis")
    bundle.workspace(workspace, source=scan)
    if bundle.selection_for(workspace, source=scan) is None or bundle.luminosity_ifb is None:
        raise RecastError(
            f"analysis {analysis} has no event selection (or no luminosity_ifb): it cannot be run from events",
            path=str(bundle.folder / "analysis.yaml"),
            field="selection",
        )
    check_xsec_source(spec_scan, load_process(Path(process)).xsec_source, card_path=process)
    load_detector(Path(detector))
    return AdaptiveRun(spec_scan, spec, bundle, workspace, Path(process), Path(detector), int(seed), float(cl))


# -- points ---------------------------------------------------------------------------------------------
def parse_point(scan: Scan, name: str) -> ScanPoint:
    """The point a name stands for (``<scan>_<v1>_<v2>``, ``p`` for the decimal point, ``m`` for minus).

    Raises:
        RecastError: the name is not one of this scan's, or its values are refused by the scan.
    """
    prefix = scan.name + "_"
    parts = name[len(prefix) :].split("_") if name.startswith(prefix) else []
    try:
        values = [float(p.replace("m", "-").replace("p", ".")) for p in parts]
    except ValueError:
        values = []
    if len(values) != len(scan.axes) or point_name(scan.name, values) != name:
        raise RecastError(f"{name!r} is not a point name of scan {scan.name}", path=str(scan.path), field="point")
    return new_point(scan, dict(zip(scan.axes, values, strict=True)))


def write_spectrum(run: AdaptiveRun, point: str, output: Path) -> Path:
    """Write a point's SLHA file (checked as a plain scan's points are)."""
    from recastflow.generate.scan import write_point_slha

    return write_point_slha(run.scan, parse_point(run.scan, point), output)


def generate(run: AdaptiveRun, point: str, chunk: int, slha: Path, output: Path) -> dict[str, Any]:
    """Generate chunk ``chunk`` of a point (``spec.chunk`` events), seeded as in a plain run of ``max_events``."""
    from recastflow.generate.pythia import generate_chunk

    _check_chunk(run, chunk)
    return generate_chunk(
        run.process,
        slha,
        point=point,
        n_events=run.spec.chunk,
        seed=derive_seed(run.seed, point, "generate"),
        chunk=chunk,
        chunks=run.spec.max_chunks,
        output=output,
        progress=True,
    )


def emulate(run: AdaptiveRun, point: str, chunk: int, events: Path, output: Path) -> dict[str, Any]:
    """Emulate the detector for chunk ``chunk`` of a point (the plain run's emulation seed)."""
    from recastflow.emulate.emulation import emulate_file

    _check_chunk(run, chunk)
    return emulate_file(events, run.detector, output, seed=derive_seed(run.seed, point, "emulate", chunk))


def _check_chunk(run: AdaptiveRun, chunk: int) -> None:
    if not 0 <= chunk < run.spec.max_chunks:
        raise RecastError(
            f"chunk {chunk} does not exist: max_events / chunk = {run.spec.max_chunks} chunks",
            path=str(run.scan.path),
            field="adaptive.events",
        )


# -- decisions -------------------------------------------------------------------------------------------
def _background(bkg: Mapping[str, Any]) -> dict[str, list[float]]:
    """Channel -> the nominal background per bin (sum of the samples' data)."""
    out: dict[str, list[float]] = {}
    for ch in bkg["channels"]:
        total: list[float] = []
        for sample in ch["samples"]:
            data = [float(v) for v in sample["data"]]
            total = [a + b for a, b in zip(total, data)] if total else data
        out[ch["name"]] = total
    return out


def signal_uncertainty(
    yields: Mapping[str, Any], background: Mapping[str, Sequence[float]], regions: Sequence[Any]
) -> tuple[str, int, float] | None:
    """The most sensitive bin, and the relative MC-statistical uncertainty delta of the signal's sensitivity.

    The exclusion comes from every bin together, each weighted by how much it tells: for a small signal
    over a background b the log-likelihood ratio grows as sum(s_i^2 / b_i). delta is the relative uncertainty of
    the weighted sum ``S = sum(w_i s_i)`` with ``w_i = s_i / b_i`` (weights taken as exact), i.e.
    ``sqrt(sum(w_i^2 sigma_i^2)) / S``: one dominant bin gives its own ``sigma / s``, n equal bins
    ``sigma / s / sqrt(n)``. The uncertainty of the one most sensitive bin alone would overstate it when several
    bins share the sensitivity, and keep generating points that are long decided.

    Args:
        yields: a ``recastflow-yields/1`` document.
        background: channel -> nominal background per bin.
        regions: the workspace's regions (name, channel).

    Returns:
        ``(region, bin, delta)`` with the bin of the largest s / sqrt(b), or None when no bin has signal.
    """
    best: tuple[float, str, int] | None = None
    weighted, variance = 0.0, 0.0
    for region in regions:
        doc = yields["regions"].get(region.name)
        if doc is None:
            continue
        for i, (s, err) in enumerate(zip(doc["yields"], doc["stat"])):
            if s <= 0:
                continue
            b = max(background[region.channel][i] if i < len(background[region.channel]) else 0.0, 1e-3)
            weighted += s * s / b
            variance += (s / b) ** 2 * err * err
            if best is None or s / math.sqrt(b) > best[0]:
                best = (s / math.sqrt(b), region.name, i)
    if best is None:
        return None
    return best[1], best[2], math.sqrt(variance) / weighted


def _scaled(yields: Mapping[str, Any], factor: float) -> dict[str, Any]:
    regions = {
        name: {**r, "yields": [v * factor for v in r["yields"]], "stat": [v * factor for v in r["stat"]]}
        for name, r in yields["regions"].items()
    }
    return {**yields, "regions": regions}


def decide_point(
    run: AdaptiveRun,
    point: str,
    reco: Sequence[Path],
    output: Path,
    *,
    settings: Any,
    log: Log,
    subset: bool = False,
) -> dict[str, Any]:
    """Select a point's chunks so far, compute CLs as selected and scaled, apply the stopping rule, write it.

    Args:
        run: the scan's settings.
        point: the point's name.
        reco: the reconstructed chunks ``0..k``.
        output: the decision file (``recastflow-adaptive-decision/1``).
        settings: the run's :class:`recastflow.stats.points.LimitSettings`.
        log: where progress lines go.
        subset: ``reco`` may be any distinct chunks of the point (``benchmarks/dense_self_noise.py``: CLs from
            disjoint parts of a dense scan's events), not only the first ones.

    Returns:
        The decision document.
    """
    from recastflow.core.events import RECO, merge_events
    from recastflow.select.selection import load_selection, run_selection
    from recastflow.stats.compiled import LikelihoodCompiler
    from recastflow.stats.limits import PointResult, evaluate_point
    from recastflow.stats.patching import check_yields, other_regions, patch_from_yields, shared_copy

    t0 = time.perf_counter()
    scan_point = parse_point(run.scan, point)
    analysis = run.analysis
    events, header = merge_events(list(reco), (RECO,), prefix=not subset, subset=subset)
    selection = analysis.selection_for(run.workspace, source=run.scan.path)
    result = run_selection(events, header, load_selection(selection), analysis.luminosity_ifb)
    yields = result.yields_doc(point)
    wsref = analysis.workspace(run.workspace, source=run.scan.path)
    check_yields(yields, wsref, str(reco[-1]), other_regions(analysis, wsref.name))
    mine = {r.name for r in wsref.regions}
    yields = {**yields, "regions": {k: v for k, v in yields["regions"].items() if k in mine}}
    bkg = wsref.load(validate=False)
    sensitive = signal_uncertainty(yields, _background(bkg), wsref.regions)
    delta = sensitive[2] if sensitive else None
    low, high = scales(delta, run.spec.stop.z)
    bkg = shared_copy(bkg)
    compiler = LikelihoodCompiler()
    # an unvalidated workspace flags every fit, so that its points never count as decided (they run to the maximum)
    caveat = analysis.events_caveat(run.workspace)
    cls: dict[str, dict[str, float]] = {}
    nominal: PointResult | None = None
    wanted: tuple[str, ...] = ()
    scaled_issues: list[str] = []
    scaled_trusted = True
    for label, factor in (("nominal", 1.0), ("low", low), ("high", high)):
        if label != "nominal" and (delta is None or label not in wanted):
            continue
        record = PointResult(
            analysis=analysis.id,
            grid=run.scan.name,
            point=point,
            workspace=run.workspace,
            values=dict(scan_point.values),
            xsec_pb=yields.get("normalisation", {}).get("xsec_pb"),
            xsec_source=yields.get("normalisation", {}).get("xsec_source"),
            cl=run.cl,
        )
        if caveat is not None:
            record.issues.append(caveat)
        ops = patch_from_yields(_scaled(yields, factor), bkg, wsref, analysis, point)
        evaluate_point(
            bkg,
            ops,
            record,
            upper_limit=False,
            fit_options=dict(settings.fit_options),
            source=str(output),
            method=settings.method,
            compiler=compiler,
            fallback=settings.fallback,
            verify=settings.verify,
            analysis=analysis,
            wsref=wsref,
        )
        obs = record.cls_obs if record.cls_obs is not None else math.nan
        exp = record.cls_exp[2] if record.cls_exp is not None else math.nan
        cls[label] = {"observed": obs, "expected": exp}
        if label != "nominal":
            # a verdict confirmed by a scaled fit is only as good as that fit: its flags block the decision too
            scaled_issues += [f"signal x {factor:.3g}: {issue}" for issue in record.issues]
            scaled_trusted = scaled_trusted and record.status == "trusted"
        if label == "nominal":
            nominal = record
            wanted = needed_scales(cls["nominal"], run.spec.stop.on, 1.0 - run.cl, low)
    assert nominal is not None
    trusted = (
        nominal.status == "trusted"
        and scaled_trusted
        and all(math.isfinite(v) for d in cls.values() for v in d.values())
    )
    n_events = int(header["n_events"])
    decision = decide(Evidence(n_events, delta, cls, trusted), run.spec, run.cl)
    doc = {
        "format": DECISION_FORMAT,
        "point": point,
        "values": dict(scan_point.values),
        "chunks": len(reco),
        "n_events": n_events,
        "stop": decision.stop,
        "reason": decision.reason,
        "states": dict(decision.states),
        "delta": delta,
        "most_sensitive": {"region": sensitive[0], "bin": sensitive[1]} if sensitive else None,
        "scales": {"low": low, "high": high},
        "cls": cls,
        "status": nominal.status,
        "issues": list(nominal.issues),
        "scaled_issues": scaled_issues,
        "excluded": {"observed": nominal.excluded_obs, "expected": nominal.excluded_exp},
        "yields": yields,
    }
    write_json_atomic(output, doc)
    log(
        f"{point}: {n_events} events, CLs_obs={cls['nominal']['observed']:.4g}, "
        f"CLs_exp={cls['nominal']['expected']:.4g}, {'stop' if decision.stop else 'continue'}: {decision.reason} "
        f"[{time.perf_counter() - t0:.1f} s] -> {output}"
    )
    return doc


# -- rounds ----------------------------------------------------------------------------------------------
def _cell_doc(cell: Cell) -> list[float]:
    return [cell.x0, cell.x1, cell.y0, cell.y1]


def _splits(round_doc: Mapping[str, Any], resolution: tuple[float, float]) -> list[Split]:
    cells = [Cell(*c) for c in round_doc["split"]]
    if "along" in round_doc:
        return [Split(cell, bool(ax), bool(ay)) for cell, (ax, ay) in zip(cells, round_doc["along"], strict=True)]
    # a round file written before splits had directions: every split went as far as the resolution allowed
    return [Split(c, c.x1 - c.x0 > resolution[0], c.y1 - c.y0 > resolution[1]) for c in cells]


def _outcome(doc: Mapping[str, Any]) -> Outcome:
    nominal = doc["cls"]["nominal"]
    alpha_free = {k: bool(v) for k, v in doc["excluded"].items() if v is not None}
    return Outcome(excluded=alpha_free, cls={k: float(v) for k, v in nominal.items() if math.isfinite(v)})


def round_points(run: AdaptiveRun, rounds: Sequence[Mapping[str, Any]]) -> list[str]:
    """The points of the round after ``rounds`` (the coarse grid when ``rounds`` is empty)."""
    if not rounds:
        return [p.name for p in run.scan.points]
    return list(rounds[-1]["next"])


def next_round(
    run: AdaptiveRun,
    index: int,
    earlier: Sequence[Path],
    decisions: Sequence[Path],
    output: Path,
    *,
    log: Log,
) -> dict[str, Any]:
    """After round ``index``'s points are decided: the cells to split and round ``index + 1``'s points.

    Args:
        run: the scan's settings.
        index: the round just decided (0: the coarse grid).
        earlier: the round files of rounds ``0..index-1``, in order.
        decisions: the final decisions of every point of rounds ``0..index``.
        output: the round file (``recastflow-adaptive-round/1``).
        log: where progress lines go.

    Returns:
        The round document; ``next`` is empty and ``done`` says why when the scan is complete.
    """
    rounds = [json.loads(Path(p).read_text()) for p in earlier]
    if [r["round"] for r in rounds] != list(range(index)):
        raise RecastError(f"round files {[str(p) for p in earlier]} are not rounds 0..{index - 1}", field="rounds")
    xa, ya = plane_axes(run.scan)
    fixed = fixed_values(run.scan)
    known: dict[tuple[float, float], Outcome] = {}
    for path in decisions:
        doc = json.loads(Path(path).read_text())
        known[(float(doc["values"][xa]), float(doc["values"][ya]))] = _outcome(doc)
    coarse = coarse_cells(run.scan.axis_values[xa], run.scan.axis_values[ya])
    history = [_splits(r, (run.spec.resolution[xa], run.spec.resolution[ya])) for r in rounds]

    def allowed(p: tuple[float, float]) -> bool:
        return admits(run.scan, {xa: p[0], ya: p[1], **fixed})

    ref = refine(
        coarse,
        history,
        known,
        admits=allowed,
        resolution=(run.spec.resolution[xa], run.spec.resolution[ya]),
        alpha=1.0 - run.cl,
        max_rounds=run.spec.max_rounds,
        max_points=run.spec.max_points,
    )
    names = []
    for x, y in ref.points:
        names.append(new_point(run.scan, {xa: x, ya: y, **fixed}).name)
    done = ref.done or ("" if names or ref.split else "nothing left to refine")
    doc = {
        "format": ROUND_FORMAT,
        "round": index,
        "points": len(known),
        "split": [_cell_doc(c.cell) for c in ref.split],
        "along": [[c.along_x, c.along_y] for c in ref.split],
        "next": names,
        "done": done,
    }
    write_json_atomic(output, doc)
    log(
        f"round {index}: {len(known)} point(s) decided, {len(ref.split)} cell(s) split, {len(names)} new point(s)"
        + (f"; done: {done}" if done else "")
        + f" -> {output}"
    )
    return doc


# -- summary ---------------------------------------------------------------------------------------------
def summarise(
    run: AdaptiveRun,
    rounds: Sequence[Path],
    decisions: Sequence[Path],
    *,
    json_out: Path,
    csv_out: Path,
    plot_out: Path,
    log: Log,
) -> dict[str, Any]:
    """Every point with its round, events and verdict, and the observed and expected contours.

    Args:
        run: the scan's settings.
        rounds: every round file, in order.
        decisions: the final decision of every point.
        json_out: the scan's document (points, contours, events spent, why it stopped).
        csv_out: one row per point.
        plot_out: the plane: points coloured by round, filled when excluded, and both contours.
        log: where progress lines go.
    """
    from recastflow.report.contours import interpolated_contour

    round_docs = [json.loads(Path(p).read_text()) for p in rounds]
    round_of = {name: 0 for name in round_points(run, [])}
    for r in round_docs:
        for name in r["next"]:
            round_of[name] = r["round"] + 1
    points = []
    for path in decisions:
        doc = json.loads(Path(path).read_text())
        points.append(
            {
                "point": doc["point"],
                "values": doc["values"],
                "round": round_of.get(doc["point"]),
                "n_events": doc["n_events"],
                "cls_obs": doc["cls"]["nominal"]["observed"],
                "cls_exp": doc["cls"]["nominal"]["expected"],
                "excluded_obs": doc["excluded"]["observed"],
                "excluded_exp": doc["excluded"]["expected"],
                "status": doc["status"],
                "delta": doc["delta"],
                "stop": doc["reason"],
            }
        )
    points.sort(key=lambda p: (p["round"], p["point"]))
    xa, ya = plane_axes(run.scan)
    level = math.log10(1.0 - run.cl)
    contours = {}
    for kind, key in (("observed", "cls_obs"), ("expected", "cls_exp")):
        # as in a grid's exclusion plot, only trusted points draw a contour
        usable = [p for p in points if p["status"] == "trusted" and p[key] is not None and math.isfinite(p[key])]
        c = interpolated_contour(
            [p["values"][xa] for p in usable],
            [p["values"][ya] for p in usable],
            [math.log10(max(p[key], 1e-12)) for p in usable],
            level,
            names=(xa, ya),
            label=f"{kind} CLs = {1.0 - run.cl:g}",
        )
        contours[kind] = [line.tolist() for line in c.lines]
    doc = {
        "format": SUMMARY_FORMAT,
        "scan": run.scan.name,
        "analysis": run.analysis.id,
        "workspace": run.workspace,
        "cl": run.cl,
        "axes": [xa, ya],
        "fixed": fixed_values(run.scan),
        "rounds": len(round_docs),
        "done": round_docs[-1]["done"] if round_docs else "",
        "points": points,
        "events": sum(p["n_events"] for p in points),
        "flagged": sorted(p["point"] for p in points if p["status"] != "trusted"),
        "contours": contours,
    }
    write_json_atomic(json_out, doc)
    header = [
        "point",
        xa,
        ya,
        "round",
        "n_events",
        "cls_obs",
        "cls_exp",
        "excluded_obs",
        "excluded_exp",
        "status",
        "stop",
    ]
    rows = [",".join(header)]
    for p in points:
        cells = [p["point"], p["values"][xa], p["values"][ya], p["round"], p["n_events"], p["cls_obs"], p["cls_exp"],
                 p["excluded_obs"], p["excluded_exp"], p["status"], '"' + p["stop"].replace('"', "'") + '"']  # fmt: skip
        rows.append(",".join(str(c) for c in cells))
    write_text_atomic(csv_out, "\n".join(rows) + "\n")
    _plot(run, doc, plot_out)
    log(
        f"{run.scan.name}: {len(points)} point(s) in {len(round_docs)} round(s), {doc['events']} events; "
        f"{len(doc['flagged'])} flagged; done: {doc['done']} -> {json_out}"
    )
    return doc


def _fixed_text(label: str, value: float) -> str:
    """A fixed parameter for a title: the label ``m(x) [GeV]`` and 60 read ``m(x) = 60 GeV``."""
    name, bracket, unit = label.partition(" [")
    return f"{name} = {value:g} {unit.rstrip(']')}" if bracket else f"{label} = {value:g}"


def _plot(run: AdaptiveRun, doc: Mapping[str, Any], output: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    xa, ya = doc["axes"]
    # the legend sits beside the plane, so that it never hides a point
    fig = Figure(figsize=(8.4, 5.2), layout="constrained")
    ax = fig.subplots()
    rounds = sorted({p["round"] for p in doc["points"]})
    cmap = matplotlib.colormaps["viridis"]
    handles: list[Any] = []
    for r in rounds:
        color = cmap(r / max(1, len(rounds) - 1))
        mine = [p for p in doc["points"] if p["round"] == r]
        ax.scatter(
            [p["values"][xa] for p in mine],
            [p["values"][ya] for p in mine],
            s=22,
            marker="o",
            facecolors=[color if p["excluded_obs"] else "none" for p in mine],
            edgecolors=[color] * len(mine),
        )
        handles.append(Line2D([], [], ls="", marker="o", color=color, label=f"round {r}: {len(mine)} points"))
    # marker fill is a second key, independent of the round's colour
    handles.append(Line2D([], [], ls="", marker="o", color="grey", label="filled: excluded (observed)"))
    handles.append(Line2D([], [], ls="", marker="o", mfc="none", color="grey", label="open: not excluded"))
    untrusted = [p for p in doc["points"] if p["status"] != "trusted"]
    if untrusted:
        ax.scatter([p["values"][xa] for p in untrusted], [p["values"][ya] for p in untrusted], marker="x", s=40,
                   color="tab:red")  # fmt: skip
        handles.append(Line2D([], [], ls="", marker="x", color="tab:red", label="not trusted (no contour)"))
    styles = {"observed": ("black", "-"), "expected": ("tab:red", "--")}
    for kind, lines in doc["contours"].items():
        color, style = styles[kind]
        for line in lines:
            xs, ys = zip(*line, strict=True)
            ax.plot(xs, ys, style, color=color)
        if lines:
            handles.append(Line2D([], [], ls=style, color=color, label=f"{kind} {doc['cl']:.0%} CL"))
    ax.set_xlabel(run.scan.axis_label(xa))
    ax.set_ylabel(run.scan.axis_label(ya))
    fixed = "".join(f", {_fixed_text(run.scan.axis_label(axis), value)}" for axis, value in doc["fixed"].items())
    ax.set_title(
        f"{doc['scan']} through {doc['analysis']}{fixed}: {len(doc['points'])} points, {doc['events']} events",
        fontsize=10,
    )
    ax.legend(handles=handles, fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(output.name + ".tmp" + output.suffix)
    fig.savefig(tmp, metadata={"Software": None} if output.suffix == ".png" else {"CreationDate": None})
    tmp.replace(output)
