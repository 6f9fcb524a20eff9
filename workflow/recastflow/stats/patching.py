"""Signal patches: from yields to JSON Patch, from published patches to yields, and PatchSets."""

from __future__ import annotations

import copy
import functools
import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NoReturn

import jsonpatch
import jsonpointer
import pyhf

from recastflow.analyses.bundle import Analysis, Grid, Point, WorkspaceRef, format_value
from recastflow.core.config import read_document, validate
from recastflow.core.errors import RecastError
from recastflow.stats import pyhfschema
from recastflow.stats.workspace_check import check_workspace

YIELDS_FORMAT = "recastflow-yields/1"


def _channel_index(spec: dict[str, Any]) -> dict[str, int]:
    return {c["name"]: i for i, c in enumerate(spec["channels"])}


def check_yields(
    doc: dict[str, Any], wsref: WorkspaceRef, path: Path | str, elsewhere: Mapping[str, int] | None = None
) -> None:
    """Check a yields document against the bundle's regions: names, bin counts, finite non-negative values.

    Args:
        doc: parsed yields document (already schema-valid).
        wsref: the workspace the yields are for.
        path: where the document came from (for messages).
        elsewhere: regions (name -> bins) of the analysis's other workspaces: one selection fills the
            signal regions of every workspace of a bundle (e.g. regions A, B and C of ATLAS-SUSY-2018-31),
            and each workspace's patch takes its own.
    """
    regions = {r.name: r.bins for r in wsref.regions}
    other = {k: v for k, v in (elsewhere or {}).items() if k not in regions}
    unknown = sorted(set(doc["regions"]) - set(regions) - set(other))
    if unknown:
        raise RecastError(
            f"region(s) {', '.join(unknown)} are not regions of workspace {wsref.name} (it has: {', '.join(regions)})"
            + (" nor of the analysis's other workspaces" if other else ""),
            path=str(path),
            field="regions",
        )
    for name, reg in doc["regions"].items():
        nbins = regions[name] if name in regions else other[name]
        for key in ("yields", "stat"):
            values = reg[key]
            where = f"regions.{name}.{key}"
            if len(values) != nbins:
                raise RecastError(f"has {len(values)} bins, region {name} has {nbins}", path=str(path), field=where)
            for i, v in enumerate(values):
                if not math.isfinite(v):
                    raise RecastError(f"bin {i} is {v}; yields must be finite numbers", path=str(path), field=where)
                if v < 0:
                    raise RecastError(
                        f"bin {i} is negative ({v}); signal yields and uncertainties must be >= 0",
                        path=str(path),
                        field=where,
                    )


def read_yields(path: Path, wsref: WorkspaceRef, elsewhere: Mapping[str, int] | None = None) -> dict[str, Any]:
    """Read and check a per-point yields file (YAML or JSON).

    Args:
        path: the yields file.
        wsref: the workspace the yields go into.
        elsewhere: regions of the analysis's other workspaces (see :func:`check_yields`); they are dropped.

    Returns:
        The yields document with the regions of ``wsref`` only.
    """
    doc = read_document(path)
    validate(doc, "yields", path)
    check_yields(doc, wsref, path, elsewhere)
    mine = {r.name for r in wsref.regions}
    return {**doc, "regions": {k: v for k, v in doc["regions"].items() if k in mine}}


def patch_from_yields(
    yields: dict[str, Any], bkg: dict[str, Any], wsref: WorkspaceRef, analysis: Analysis, sample: str
) -> list[dict[str, Any]]:
    """Build the JSON Patch that adds a signal sample to every mapped channel.

    The sample carries the POI normfactor, the luminosity modifier, the MC-statistics
    modifier of the bundle's convention (a staterror or a shapesys) and any systematics given
    with the yields. Channels the bundle excludes from the fit are removed, as the published
    patches do.

    Args:
        yields: checked yields document.
        bkg: background-only workspace spec.
        wsref: the workspace's bundle entry.
        analysis: the bundle (signal convention).
        sample: name of the signal sample.
    """
    index = _channel_index(bkg)
    ops: list[dict[str, Any]] = []
    for region in wsref.regions:
        if region.name not in yields["regions"]:
            continue  # no signal there: published patches then add no sample either
        reg = yields["regions"][region.name]
        ch = index[region.channel]
        modifiers: list[dict[str, Any]] = []
        if analysis.lumi_modifier:
            modifiers.append({"name": analysis.lumi_modifier, "type": "lumi", "data": None})
        # the bundle's convention: a staterror per channel shared with the backgrounds, or a shapesys of the
        # signal sample alone; both take the absolute uncertainty per bin
        modifiers.append(
            {
                "name": analysis.mcstat_name(region.channel, sample),
                "type": analysis.mcstat_type,
                "data": [float(v) for v in reg["stat"]],
            }
        )
        modifiers.extend(copy.deepcopy(m) for m in reg.get("systematics", []))
        modifiers.append({"name": analysis.poi, "type": "normfactor", "data": None})
        for m in modifiers:
            m.setdefault("data", None)
        value = {"name": sample, "data": [float(v) for v in reg["yields"]], "modifiers": modifiers}
        ops.append(
            {"op": "add", "path": f"/channels/{ch}/samples/{len(bkg['channels'][ch]['samples'])}", "value": value}
        )
    for ch in sorted((index[name] for name in wsref.exclude_channels), reverse=True):
        ops.append({"op": "remove", "path": f"/channels/{ch}"})
    return ops


def yields_from_patch(
    ops: list[dict[str, Any]], bkg: dict[str, Any], wsref: WorkspaceRef, analysis: Analysis, source: Path | str
) -> dict[str, Any]:
    """Extract per-region signal yields from a published JSON Patch.

    The inverse of :func:`patch_from_yields`: nominal yields, the MC-stat
    uncertainty and every other signal modifier are kept, so that feeding the
    result back through ``recastflow patch`` gives the same likelihood.

    Args:
        ops: the published patch.
        bkg: background-only workspace it applies to.
        wsref: the workspace's bundle entry.
        analysis: the bundle (signal convention).
        source: the patch's file (for messages).
    """
    by_channel = {r.channel: r for r in wsref.regions}
    names = [c["name"] for c in bkg["channels"]]
    regions: dict[str, Any] = {}
    sample = None
    for i, op in enumerate(ops):
        if op.get("op") != "add" or not isinstance(op.get("value"), dict) or "modifiers" not in op["value"]:
            continue
        parts = op["path"].strip("/").split("/")
        if len(parts) < 3 or parts[0] != "channels" or not parts[1].isdigit() or int(parts[1]) >= len(names):
            raise RecastError(f"operation {i} adds to {op['path']}, not a channel of the workspace", path=str(source))
        channel = names[int(parts[1])]
        if channel not in by_channel:
            raise RecastError(
                f"operation {i} adds signal to channel {channel!r}, which the bundle does not map to a region",
                path=str(source),
            )
        value = op["value"]
        sample = sample or value["name"]
        stat_name = analysis.mcstat_name(channel, value["name"])
        stat = None
        systematics = []
        for m in value["modifiers"]:
            if m["type"] == analysis.mcstat_type and m["name"] == stat_name:
                stat = m["data"]
            elif (m["type"] == "normfactor" and m["name"] == analysis.poi) or (
                m["type"] == "lumi" and m["name"] == analysis.lumi_modifier
            ):
                continue
            else:
                systematics.append({"name": m["name"], "type": m["type"], "data": m.get("data")})
        if stat is None:
            seen = [f"{m['type']} {m['name']!r}" for m in value["modifiers"] if m["type"] in ("staterror", "shapesys")]
            raise RecastError(
                f"signal {value['name']!r} in channel {channel!r} has no {analysis.mcstat_type} modifier named "
                f"{stat_name!r} (it has: {', '.join(seen) or 'no staterror or shapesys'}); set signal.mcstat_type "
                "and signal.mcstat_modifier in the bundle's analysis.yaml to the likelihood's convention",
                path=str(source),
                field="signal.mcstat_modifier",
            )
        regions[by_channel[channel].name] = {"yields": value["data"], "stat": stat, "systematics": systematics}
    if not regions:
        raise RecastError("the patch adds no signal sample", path=str(source))
    return {"format": YIELDS_FORMAT, "sample": sample, "regions": regions}


def apply_patch(
    bkg: dict[str, Any],
    ops: list[dict[str, Any]],
    source: Path | str,
    *,
    build_model: bool = True,
    analysis: Analysis | None = None,
    wsref: WorkspaceRef | None = None,
) -> dict[str, Any]:
    """Apply a JSON Patch and check the result is a sound pyhf likelihood whose model builds.

    Beyond pyhf's schema, the patched workspace is checked as a likelihood
    (:func:`recastflow.stats.workspace_check.check_workspace`: finite, non-negative observations,
    yields and modifier data, bin counts, unique names, a POI some sample carries) and, given the
    bundle, against it (:func:`check_signal_convention`: the bundle's POI, every mapped region
    still in the fit).

    Args:
        bkg: background-only workspace.
        ops: the patch.
        source: where the patch came from (for messages).
        build_model: also build the pyhf model (skip when the caller builds it next anyway).
        analysis: the bundle; with ``wsref``, also check the patched workspace against it.
        wsref: the bundle's entry of this workspace.
    """
    names = [c["name"] for c in bkg["channels"]]
    for i, op in enumerate(ops):
        parts = str(op.get("path", "")).strip("/").split("/")
        if parts and parts[0] == "channels" and len(parts) > 1 and parts[1].isdigit() and int(parts[1]) >= len(names):
            raise RecastError(
                f"operation {i} ({op.get('op')} {op.get('path')}) refers to channel {parts[1]}, "
                f"but the workspace has {len(names)} channels ({', '.join(names)}); "
                "is this patch for another workspace or region?",
                path=str(source),
            )
    try:
        spec = _apply_sharing(bkg, ops)
    except (jsonpatch.JsonPatchException, jsonpointer.JsonPointerException) as exc:
        raise RecastError(f"patch does not apply to the workspace: {exc}", path=str(source)) from None
    try:
        pyhfschema.validate(spec, "workspace.json")
    except pyhf.exceptions.InvalidSpecification as exc:
        raise RecastError(f"patched workspace is invalid: {str(exc).splitlines()[0]}", path=str(source)) from None
    if analysis is not None and wsref is not None:
        # first: a POI or a region the patch changed is best named as such, not as what follows from it
        check_signal_convention(spec, source, analysis, wsref)
    check_workspace(spec, source, what="patched workspace", trusted=_trusted_parts(bkg, source))
    if build_model:
        build_model_and_data(spec, source)
    return spec


def check_signal_convention(spec: dict[str, Any], source: Path | str, analysis: Analysis, wsref: WorkspaceRef) -> None:
    """Check a patched workspace against its bundle: the POI it names, every mapped region still fitted.

    A patch that removes a signal region (or a bundle whose ``exclude_channels`` does) gives a
    likelihood with no sensitivity, CLs = 1 at every point, which would otherwise look trusted.

    Args:
        spec: the patched workspace (schema-valid).
        source: the patch (for messages).
        analysis: the bundle.
        wsref: the bundle's entry of this workspace.
    """
    bins = {c["name"]: len(c["samples"][0]["data"]) if c["samples"] else 0 for c in spec["channels"]}
    for region in wsref.regions:
        if region.channel not in bins:
            raise RecastError(
                f"patched workspace: channel {region.channel!r} of region {region.name!r} is no longer in the "
                f"workspace (it has: {', '.join(bins)}); a patch must not remove a region the bundle maps",
                path=str(source),
            )
        if bins[region.channel] != region.bins:
            raise RecastError(
                f"patched workspace: channel {region.channel!r} of region {region.name!r} has "
                f"{bins[region.channel]} bins, the bundle declares {region.bins}",
                path=str(source),
            )
    for measurement in spec["measurements"]:
        poi = measurement["config"]["poi"]
        if poi != analysis.poi:
            raise RecastError(
                f"patched workspace: measurement {measurement['name']!r} has POI {poi!r}, the bundle names "
                f"{analysis.poi!r} (signal.poi of {analysis.folder / 'analysis.yaml'}); a patch must not change the POI",
                path=str(source),
            )


#: The last read-only background-only workspace checked whole, with the ``id()`` of its observation
#: entries and samples: patches share them (:func:`_apply_sharing`), so on a grid each point's
#: check covers only what its patch changed. Kept referenced, so that the ids stay its objects'.
_checked_background: list[tuple[Any, frozenset[int]]] = []


def _trusted_parts(bkg: dict[str, Any], source: Path | str) -> frozenset[int]:
    """The ids of ``bkg``'s parts already checked, checking it first; none for a workspace that may change."""
    if not isinstance(bkg, SharedDict):
        return frozenset()  # a plain dict may change between calls: check every point's workspace whole
    for checked, ids in _checked_background:
        if checked is bkg:
            return ids
    # loaded with WorkspaceRef.load, it passed these checks already; a workspace built elsewhere is checked here
    check_workspace(bkg, source, what="background-only workspace", poi=False)
    ids = frozenset(id(o) for o in bkg.get("observations", ())) | frozenset(
        id(s) for c in bkg["channels"] for s in c["samples"]
    )
    _checked_background[:] = [(bkg, ids)]
    return ids


def _read_only(self: Any, *args: Any, **kwargs: Any) -> NoReturn:
    raise TypeError("a workspace shared between points is read-only")


def _same(self: Any, memo: dict[int, Any]) -> Any:
    return self


class SharedList(list):
    """A list of a :func:`shared_copy`: read-only, and deep copies return it as it is."""

    __slots__ = ()
    __deepcopy__ = _same
    append = extend = insert = pop = remove = clear = sort = reverse = _read_only
    __setitem__ = __delitem__ = __iadd__ = __imul__ = _read_only


class SharedDict(dict):
    """A mapping of a :func:`shared_copy`: read-only, and deep copies return it as it is."""

    __slots__ = ()
    __deepcopy__ = _same
    __setitem__ = __delitem__ = __ior__ = clear = pop = popitem = setdefault = update = _read_only


def shared_copy(doc: Any) -> Any:
    """A read-only copy of a JSON document that deep copies share instead of copying.

    pyhf deep-copies a specification twice per model (``Workspace`` and ``Model``). On a grid
    most of each point's specification is the background-only workspace, the same for every
    point, and copying it (1Lbb: 1.2 MB of JSON, 45 thousand objects) cost more per point
    than a fit. Done once per grid on the background-only workspace, the points' specifications
    (:func:`apply_patch` copies only what a patch changes) share it. Sharing is safe because
    nothing can change it: every mutating method raises ``TypeError``.
    """
    if isinstance(doc, dict):
        return doc if isinstance(doc, SharedDict) else SharedDict((k, shared_copy(v)) for k, v in doc.items())
    if isinstance(doc, list):
        return doc if isinstance(doc, SharedList) else SharedList(shared_copy(v) for v in doc)
    return doc


def _apply_sharing(doc: Any, ops: list[dict[str, Any]]) -> Any:
    """``jsonpatch.apply_patch(doc, ops)`` without deep-copying ``doc``.

    Before each operation, every container on its path (and on its ``from`` path) is replaced by
    a shallow copy, so the operation changes copies only: ``doc`` is never modified and the
    result shares everything the patch leaves alone. Paths are resolved with jsonpointer's own
    ``walk``, as jsonpatch resolves them.
    """
    root = _shallow(doc)
    for op in ops:
        paths = [op.get("path")] + ([op.get("from")] if op.get("op") == "move" else [])
        for path in paths:
            if isinstance(path, str):
                _copy_along(root, path)
        root = jsonpatch.JsonPatch([op]).apply(root, in_place=True)
    return root


def _shallow(obj: Any) -> Any:
    # plain containers, also of shared ones: the copies are the ones the patch changes
    if isinstance(obj, dict):
        return dict(obj)
    if isinstance(obj, list):
        return list(obj)
    return obj


def _copy_along(root: Any, path: str) -> None:
    """Replace each container on ``path`` below ``root`` (the operation's parent included) by a shallow copy."""
    try:
        pointer = jsonpointer.JsonPointer(path)
    except jsonpointer.JsonPointerException:
        return  # the operation itself will fail with jsonpatch's message, before changing anything
    node = root
    for part in pointer.parts[:-1]:
        try:
            key = pointer.get_part(node, part)
            child = pointer.walk(node, part)
        except (jsonpointer.JsonPointerException, TypeError):
            return
        if not isinstance(child, (dict, list)):
            return
        child = _shallow(child)
        node[key] = child
        node = child


def build_model_and_data(spec: dict[str, Any], source: Path | str) -> tuple[pyhf.pdf.Model, list[float]]:
    """Build the pyhf model and its data (observations + auxiliary data) of a patched workspace."""
    try:
        # the spec was validated against pyhf's workspace schema just before (apply_patch); pyhf would
        # validate it twice more (workspace, model), which costs more than the fits on large likelihoods.
        # pyhf also deep-copies it twice: made read-only once (the parts a grid shares already are), it is
        # not copied at all (1Lbb: a point's padded signal samples, 0.07 s per point)
        ws = pyhf.Workspace(shared_copy(spec), validate=False)
        model = ws.model(validate=False)
        return model, ws.data(model)
    except Exception as exc:  # pyhf raises plain exceptions for inconsistent modifiers
        raise RecastError(f"patched workspace does not build a model: {exc}", path=str(source)) from None


def _read_patch(path: Path) -> list[dict[str, Any]]:
    ops = read_document(path)
    if not isinstance(ops, list) or not all(isinstance(o, dict) and "op" in o and "path" in o for o in ops):
        raise RecastError("not a JSON Patch (expected a list of {op, path, ...} operations)", path=str(path))
    return ops


@functools.lru_cache(maxsize=4)
def _read_patchset(path: Path, mtime_ns: int) -> pyhf.PatchSet:
    # read once per grid, not once per point (a published PatchSet holds hundreds of points)
    doc = read_document(path)
    if not isinstance(doc, dict):
        # pyhf reads a list or null with an AttributeError
        raise RecastError(
            f"not a pyhf PatchSet: the file holds {type(doc).__name__ if doc is not None else 'null'}, "
            "a PatchSet is an object with metadata, patches and version",
            path=str(path),
        )
    try:
        return pyhf.PatchSet(doc)
    except pyhf.exceptions.InvalidSpecification as exc:
        raise RecastError(f"not a valid pyhf PatchSet: {str(exc).splitlines()[0]}", path=str(path)) from None


def _patch_from_patchset(path: Path, point: Point, labels: list[str], grid_path: Path | str) -> list[dict[str, Any]]:
    """The patch of a grid point in a published PatchSet, matched by the point's values only.

    A point's name is the grid author's; the values are the physics. A patch of the same name but
    other values is another hypothesis, so it is refused, not taken.
    """
    patchset = _read_patchset(path, path.stat().st_mtime_ns)
    if list(patchset.labels) != labels:
        raise RecastError(
            f"PatchSet labels {patchset.labels} differ from the grid parameters {labels} of {grid_path}; "
            "name the grid's parameters as the PatchSet's labels, in the same order",
            path=str(path),
        )
    values = tuple(point.values[k] for k in labels)
    try:
        return list(patchset[values].patch)
    except pyhf.exceptions.InvalidPatchLookup:
        pass
    given = ", ".join(f"{k}={format_value(v)}" for k, v in zip(labels, values))
    try:
        same_name = patchset[point.name]
    except pyhf.exceptions.InvalidPatchLookup:
        raise RecastError(
            f"has no patch with the values of point {point.name!r} of {grid_path} ({given}); "
            "correct the point's values or remove the point",
            path=str(path),
        ) from None
    theirs = ", ".join(f"{k}={format_value(v)}" for k, v in zip(labels, same_name.values))
    raise RecastError(
        f"has a patch named {point.name!r} for {theirs}, but point {point.name!r} of {grid_path} has "
        f"{given}, which no patch has; correct the point's values (points are matched by their values)",
        path=str(path),
    )


def other_regions(analysis: Analysis, workspace: str) -> dict[str, int]:
    """The regions (name -> bins) of an analysis's workspaces other than ``workspace``."""
    return {r.name: r.bins for name, ws in analysis.workspaces.items() if name != workspace for r in ws.regions}


def point_patch(
    point: Point, grid: Grid, bkg: dict[str, Any], wsref: WorkspaceRef, analysis: Analysis
) -> list[dict[str, Any]]:
    """Return the JSON Patch of one grid point, whatever its source (patch, patchset, yields)."""
    if point.yields is not None:
        doc = read_yields(point.yields, wsref, other_regions(analysis, wsref.name))
        return patch_from_yields(doc, bkg, wsref, analysis, doc.get("sample") or point.name)
    if point.patch is not None:
        return _read_patch(point.patch)
    assert grid.patchset is not None  # guaranteed by load_grid
    return _patch_from_patchset(grid.patchset, point, list(grid.parameters), grid.path)


def published_yields(grid: Grid, analysis: Analysis, point_name: str) -> dict[str, Any]:
    """The signal yields contained in a grid point's published patch (``recastflow extract-yields``).

    Args:
        grid: the point's grid.
        analysis: the grid's bundle.
        point_name: the point.

    Returns:
        The ``recastflow-yields/1`` document, with the point's name.

    Raises:
        RecastError: no such point, or its patch does not fit the bundle's workspace.
    """
    wsref = analysis.workspace(grid.workspace, source=grid.path)
    bkg = wsref.load()
    point = grid.point(point_name)
    ops = point_patch(point, grid, bkg, wsref, analysis)
    doc = yields_from_patch(ops, bkg, wsref, analysis, point.patch or grid.patchset or grid.path)
    doc["point"] = point.name
    return doc


def point_workspace(grid: Grid, analysis: Analysis, point_name: str, patchset: Path | str) -> dict[str, Any]:
    """The workspace of one grid point: the grid's background-only workspace with the point's patch applied.

    Args:
        grid: the point's grid.
        analysis: the grid's bundle.
        point_name: the point.
        patchset: the grid's PatchSet (``recastflow patch``); named as given in messages.

    Returns:
        The patched workspace specification, checked as a likelihood.

    Raises:
        RecastError: no such point, a PatchSet made for another workspace, or a patched workspace that is
            not a sound likelihood.
    """
    from recastflow.core.io import read_json

    point = grid.point(point_name)
    wsref = analysis.workspace(grid.workspace, source=grid.path)
    bkg = wsref.load(validate=False)  # the patched spec is validated, once
    ops = patch_for_point(read_json(Path(patchset)), bkg, point.name, patchset)
    return apply_patch(bkg, ops, patchset, analysis=analysis, wsref=wsref)


def build_patchset(grid: Grid, analysis: Analysis, bkg: dict[str, Any]) -> dict[str, Any]:
    """Build a pyhf PatchSet for a whole grid, validated and checked to apply cleanly.

    Args:
        grid: the signal grid.
        analysis: its bundle.
        bkg: the (sha256-verified) background-only workspace.
    """
    wsref = analysis.workspace(grid.workspace, source=grid.path)
    labels = list(grid.parameters)
    patches = []
    # read-only: each point's likelihood check then covers only what its patch changes
    shared = shared_copy(bkg)
    built: set[str] = set()
    for point in grid.points:
        ops = point_patch(point, grid, bkg, wsref, analysis)
        # Whether pyhf can build a model depends on the patch's structure (names, types, bin counts), not on
        # its numbers, which the schema and likelihood checks cover for every point: one model per structure
        # (building one costs 9 ms, most of a 10,000-point grid's time)
        shape = _structure(ops)
        apply_patch(
            shared,
            ops,
            point.yields or point.patch or grid.patchset or grid.path,
            analysis=analysis,
            wsref=wsref,
            build_model=shape not in built,
        )
        built.add(shape)
        patches.append({"metadata": {"name": point.name, "values": [point.values[k] for k in labels]}, "patch": ops})
    patchset = {
        "metadata": {
            "name": grid.name,
            "description": grid.description or f"{grid.name}: signal grid for {analysis.id} {grid.workspace}",
            "digests": {"sha256": pyhf.utils.digest(bkg)},
            "labels": labels,
            "references": {"hepdata": analysis.hepdata["record"]},
        },
        "patches": patches,
        "version": "1.0.0",
    }
    try:
        pyhfschema.validate(patchset, "patchset.json")
    except pyhf.exceptions.InvalidSpecification as exc:
        raise RecastError(
            f"the PatchSet built for grid {grid.name} is invalid: {str(exc).splitlines()[0]}", path=str(grid.path)
        ) from None
    _check_patch_keys(patchset, grid.path)
    return patchset


def _structure(ops: list[dict[str, Any]]) -> str:
    """A patch with every number and the added samples' names replaced: what two points share when only their
    numbers differ (a grid names its signal sample after the point; duplicate names are checked per point)."""

    def shape(obj: Any) -> Any:
        if isinstance(obj, bool) or obj is None or isinstance(obj, str):
            return obj
        if isinstance(obj, (int, float)):
            return "#"
        if isinstance(obj, list):
            return [shape(v) for v in obj]
        if isinstance(obj, dict):
            return {k: shape(v) for k, v in obj.items()}
        return repr(type(obj))

    renamed = [
        dict(op, value=dict(op["value"], name="<sample>"))
        if isinstance(op.get("value"), dict) and "modifiers" in op["value"]
        else op
        for op in ops
    ]
    return json.dumps(shape(renamed), sort_keys=True)


def _check_patch_keys(patchset: dict[str, Any], source: Path | str) -> None:
    """pyhf.PatchSet's own checks (unique names and values, one value per label) without its slow schema pass.

    ``pyhf.PatchSet`` validates the whole document again with pure-Python jsonschema (seconds for thousands of
    points) before these checks; the schema was just checked by :mod:`recastflow.stats.pyhfschema`.
    """
    labels = patchset["metadata"]["labels"]
    names: set[str] = set()
    values: set[tuple[Any, ...]] = set()
    for patch in patchset["patches"]:
        name, vals = patch["metadata"]["name"], tuple(patch["metadata"]["values"])
        if name in names:
            raise RecastError(f"two points are named {name!r}", path=str(source), field="points")
        if vals in values:
            raise RecastError(
                f"two points have the values {list(vals)} (point {name!r}); each point needs its own",
                path=str(source),
                field="points",
            )
        if len(vals) != len(labels):
            raise RecastError(
                f"point {name!r} has {len(vals)} values for {len(labels)} parameters", path=str(source), field="points"
            )
        names.add(name)
        values.add(vals)


def patch_for_point(
    patchset: dict[str, Any], bkg: dict[str, Any], name: str, source: Path | str
) -> list[dict[str, Any]]:
    """Look up one point's patch in a PatchSet, checking it was made for this workspace."""
    return patches_by_name(patchset, bkg, [name], source)[name]


def patches_by_name(
    patchset: dict[str, Any], bkg: dict[str, Any], names: list[str], source: Path | str
) -> dict[str, list[dict[str, Any]]]:
    """Look up the patches of several points in a PatchSet, checking once that it was made for this workspace."""
    from recastflow.stats.pyhfschema import validate as validate_pyhf

    # a file given as --patchset may be anything (a yields file, a workspace): pyhf's PatchSet schema says so
    # in one line, instead of a KeyError further down
    try:
        validate_pyhf(patchset, "patchset.json")
    except pyhf.exceptions.InvalidSpecification as exc:
        raise RecastError(
            f"not a pyhf PatchSet (the output of 'recastflow patch'): {str(exc).splitlines()[0][:200]}",
            path=str(source),
        ) from None
    digest = pyhf.utils.digest(bkg)
    if patchset["metadata"]["digests"].get("sha256") != digest:
        raise RecastError(
            "PatchSet was built for a different background-only workspace (digest differs); re-run the patch stage",
            path=str(source),
        )
    index = {p["metadata"]["name"]: p["patch"] for p in patchset["patches"]}
    missing = [n for n in names if n not in index]
    if missing:
        raise RecastError(f"PatchSet has no point {missing[0]!r}", path=str(source))
    return {n: index[n] for n in names}
