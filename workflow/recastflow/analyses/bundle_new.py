"""A new analysis bundle from a published likelihood archive (``recastflow bundle new``).

HEPData likelihood archives come in a few layouts, all of which are recognised by content, not by
file name:

* per-point patches: ``Region*/BkgOnly.json`` with ``Region*/patch.<point>.json`` JSON Patches beside it;
* a PatchSet: ``BkgOnly.json`` with ``patchset.json`` (``metadata.labels``, ``metadata.digests``);
* several workspaces, each with its patches or PatchSet;
* nested archives: an archive inside the archive (unpacked in turn, and declared as a source
  ``within`` the outer one, so the fetch layer can take it from there).

A background-only workspace is a JSON object with ``channels``, ``observations`` and
``measurements``; a PatchSet a JSON object with ``metadata.labels`` and ``patches``; a per-point
patch a JSON list of JSON Patch operations. A PatchSet belongs to the workspace whose pyhf digest it
carries; per-point patches to the workspace in their folder.

From the files it reads the channels and bins, the POI, and, by applying a published signal patch
to its workspace, which channels the signal fills (the regions), which channels the patch removes
(``exclude_channels``), the luminosity modifier and the signal's MC-statistics convention
(``staterror`` per channel or ``shapesys`` per sample, with the name template in ``{channel}`` and
``{sample}``). It writes ``analysis.yaml`` (sources with sha256, members and workspace digests) and
one grid per workspace listing every published point, and lists what a person still has to add.
"""

from __future__ import annotations

import copy
import json
import re
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import yaml

from recastflow.analyses import fetch
from recastflow.core.errors import RecastError

#: Keys of a pyhf workspace (a background-only workspace has them all).
WORKSPACE_KEYS = ("channels", "observations", "measurements")
#: Stands in for an unknown HEPData record: PatchSets must name one of this form (pyhf's schema).
PLACEHOLDER_RECORD = "ins0000000"
#: A number in a published patch name: ``1300``, ``2.5``, or ``2p5`` (``p`` for the point).
NUMBER = re.compile(r"^\d+(?:[.p]\d+)?$")


@dataclass
class _Container:
    """A published file that holds others: the archive given, or one inside it."""

    key: str  # its name in 'sources'
    file: str  # its file name
    path: Path | None  # the file (None for a folder given as input)
    folder: Path  # where it is unpacked (or the folder given)
    unpack: str  # tar, zip or none (a folder)
    within: tuple[str, str] | None = None  # (outer key, member) for a nested archive
    sha256: str | None = None  # known already (a fetched record), else computed from path
    size: int | None = None


@dataclass
class _Published:
    """A published JSON file found in a container."""

    container: _Container
    member: str  # its path inside the container (POSIX)
    path: Path
    doc: Any


@dataclass
class WorkspaceFound:
    """A background-only workspace and its signal: per-point patches or a PatchSet."""

    name: str
    ws: _Published
    patches: list[_Published] = field(default_factory=list)
    patchset: _Published | None = None


@dataclass
class Result:
    """What ``bundle new`` wrote and what is left to the person."""

    analysis_yaml: Path
    grids: list[Path]
    todo: list[str]


def _fail(message: str, where: str | Path, field_: str | None = None) -> RecastError:
    return RecastError(message, path=str(where), field=field_)


# -- unpacking ---------------------------------------------------------------------------------------
def _unpack_into(archive: Path, out: Path, key: str) -> str:
    """Unpack an archive safely (the fetch layer's checks) into ``out``; its unpack kind."""
    kind = fetch.unpack_kind(archive.name)
    if kind not in ("tar", "zip"):
        raise _fail(
            f"not a tar or zip archive (by its name; {', '.join(sorted(fetch.ARCHIVE_SUFFIXES))}) nor a folder",
            archive,
            "--from-archive",
        )
    source = fetch.Source(name=key, file=archive.name, sha256="", unpack=kind)
    fetch._unpack(archive, out, source, own=False)
    return kind


def _containers(
    given: Path, work: Path, key: str = "likelihoods", record: fetch.Source | None = None
) -> list[_Container]:
    """The given archive (or folder, or fetched record) and every archive nested in it, unpacked under ``work``."""
    if record is not None:
        top = _Container(
            key, record.file, None, record.directory, record.unpack, sha256=record.sha256, size=record.size
        )
    elif given.is_dir():
        top = _Container(key, given.name, None, given, "none")
    elif given.is_file():
        out = work / "0"
        kind = _unpack_into(given, out, key)
        top = _Container(key, given.name, given, out, kind)
    else:
        raise _fail("no such file or folder", given, "--from-archive")
    found = [top]
    queue = [top]
    while queue:
        outer = queue.pop(0)
        for path in sorted(outer.folder.rglob("*")):
            if not path.is_file() or fetch.unpack_kind(path.name) not in ("tar", "zip"):
                continue
            member = path.relative_to(outer.folder).as_posix()
            inner_key = _source_key(f"{key}_{PurePosixPath(member).name.split('.')[0]}", {c.key for c in found})
            out = work / str(len(found))
            kind = _unpack_into(path, out, inner_key)
            if outer.unpack == "none":
                # a folder given as input is no published file: the nested archive is a source of its own
                inner = _Container(inner_key, path.name, path, out, kind)
            else:
                inner = _Container(inner_key, path.name, path, out, kind, within=(outer.key, member))
            found.append(inner)
            queue.append(inner)
    return found


def _source_key(text: str, taken: set[str]) -> str:
    """A source name (schema pattern) from ``text``, unique among ``taken``."""
    base = re.sub(r"[^A-Za-z0-9_.-]", "_", text).strip("._-") or "source"
    if not base[0].isalnum():
        base = "s" + base
    name, i = base, 2
    while name in taken:
        name, i = f"{base}_{i}", i + 1
    return name


# -- finding the workspaces and their signals --------------------------------------------------------
def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_bytes())
    except (ValueError, UnicodeDecodeError):
        return None  # not JSON: not a workspace or a patch (README, plots, ...)


def _is_workspace(doc: Any) -> bool:
    return isinstance(doc, dict) and all(k in doc for k in WORKSPACE_KEYS)


def _is_patchset(doc: Any) -> bool:
    return (
        isinstance(doc, dict)
        and isinstance(doc.get("patches"), list)
        and isinstance(doc.get("metadata"), dict)
        and "labels" in doc["metadata"]
    )


def _is_patch(doc: Any) -> bool:
    return isinstance(doc, list) and bool(doc) and all(isinstance(o, dict) and "op" in o and "path" in o for o in doc)


def find_workspaces(containers: list[_Container]) -> list[WorkspaceFound]:
    """Every background-only workspace with its per-point patches or PatchSet.

    Raises:
        RecastError: no workspace; a PatchSet whose digest matches no workspace; patches with no
            workspace in their folder when the archive has several.
    """
    workspaces: list[_Published] = []
    patchsets: list[_Published] = []
    patches: list[_Published] = []
    for c in containers:
        for path in sorted(c.folder.rglob("*.json")):
            doc = _read_json(path)
            item = _Published(c, path.relative_to(c.folder).as_posix(), path, doc)
            if _is_workspace(doc):
                workspaces.append(item)
            elif _is_patchset(doc):
                patchsets.append(item)
            elif _is_patch(doc):
                patches.append(item)
    top = containers[0]
    if not workspaces:
        raise _fail(
            "no background-only workspace (a JSON object with channels, observations and measurements) "
            "in it: unknown layout",
            top.path or top.folder,
            "--from-archive",
        )
    names = _workspace_names(workspaces)
    found = {id(w): WorkspaceFound(names[id(w)], w) for w in workspaces}
    by_digest = {fetch.json_digest(w.doc): w for w in workspaces}
    for ps in patchsets:
        digests = ps.doc["metadata"].get("digests") or {}
        ws = by_digest.get(digests.get("sha256", ""))
        if ws is None:
            # a digest that matches nothing is a PatchSet for another workspace; without one, its folder's
            same = [w for w in workspaces if w.container is ps.container and w.path.parent == ps.path.parent]
            if digests.get("sha256") or len(same) != 1:
                raise _fail(
                    f"its metadata.digests.sha256 {digests.get('sha256')!r} is the digest of no workspace found",
                    ps.path,
                    "metadata.digests",
                )
            ws = same[0]
        found[id(ws)].patchset = ps
    for patch in patches:
        same = [w for w in workspaces if w.container is patch.container and w.path.parent == patch.path.parent]
        if not same and len(workspaces) == 1:
            same = workspaces
        if len(same) != 1:
            raise _fail(
                "a signal patch with "
                + ("no workspace in its folder" if not same else "several workspaces in its folder")
                + ": which one it patches is unknown",
                patch.path,
            )
        found[id(same[0])].patches.append(patch)
    out = [f for f in found.values() if f.patches or f.patchset]
    if not out:
        raise _fail(
            "no signal patches (patch.*.json JSON Patches) and no PatchSet next to the workspace(s): "
            "nothing to compute CLs for",
            top.path or top.folder,
            "--from-archive",
        )
    for f in out:
        if f.patches and f.patchset:
            raise _fail("both per-point patches and a PatchSet for this workspace: keep one", f.ws.path)
    return sorted(out, key=lambda f: f.name)


def _workspace_names(workspaces: list[_Published]) -> dict[int, str]:
    """A short name per workspace: its folder (``RegionA``), else its file stem."""
    names: dict[int, str] = {}
    taken: set[str] = set()
    for w in workspaces:
        parent = PurePosixPath(w.member).parent.name
        base = parent or Path(w.member).stem
        names[id(w)] = _source_key(base, taken)
        taken.add(names[id(w)])
    return names


# -- what a signal patch says about the conventions --------------------------------------------------
@dataclass(frozen=True)
class Conventions:
    """What a published signal patch shows: where the signal goes and how it is modelled."""

    regions: tuple[str, ...]
    excluded: tuple[str, ...]
    lumi_modifier: str | None
    mcstat_type: str
    mcstat_modifier: str


def conventions(ws: dict[str, Any], ops: list[dict[str, Any]], poi: str, where: Path) -> Conventions | None:
    """Apply a published patch to its workspace and read the signal's channels and modifiers.

    Returns:
        The conventions, or None for a patch that adds no signal sample anywhere (published for
        points without selected signal events: there is no likelihood in the POI to fit).

    Raises:
        RecastError: the patch does not apply, adds no sample, or its signal lacks the POI or an
            MC-statistics modifier with one name convention in every channel.
    """
    import jsonpatch

    try:
        patched = jsonpatch.apply_patch(_skeleton(ws), ops, in_place=True)
    except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException, KeyError, IndexError, TypeError) as exc:
        raise _fail(f"does not apply to its background-only workspace: {exc}", where) from None
    before = {c["name"]: {s["name"] for s in c["samples"]} for c in ws["channels"]}
    after = {c["name"]: c for c in patched["channels"]}
    excluded = tuple(name for name in before if name not in after)
    regions: list[Any] = []
    templates: set[str] = set()
    lumi: set[str] = set()
    kinds: set[str] = set()
    for name, channel in after.items():
        new = [s for s in channel["samples"] if s["name"] not in before.get(name, set())]
        if not new:
            continue
        if len(new) > 1:
            raise _fail(f"adds {len(new)} samples to channel {name!r}; one signal sample is expected", where)
        sample = new[0]
        mods = sample.get("modifiers", [])
        if not any(m["type"] == "normfactor" and m["name"] == poi for m in mods):
            raise _fail(
                f"the signal sample {sample['name']!r} in channel {name!r} has no normfactor {poi!r} (the "
                "workspace's POI)",
                where,
            )
        regions.append(name)
        lumi.update(m["name"] for m in mods if m["type"] == "lumi")
        stat = [m for m in mods if m["type"] in ("staterror", "shapesys")]
        if len(stat) > 1:
            # a shapesys per sample is the MC statistics only if it is named after the channel
            stat = [m for m in stat if name in m["name"]] or stat
        if len(stat) != 1:
            raise _fail(
                f"the signal sample {sample['name']!r} in channel {name!r} has "
                f"{len(stat) or 'no'} staterror/shapesys modifiers; one (its MC statistics) is expected",
                where,
            )
        kinds.add(stat[0]["type"])
        # longest first: a sample name often contains the channel's, never the reverse in published files
        text = stat[0]["name"]
        for value, placeholder in sorted(((sample["name"], "{sample}"), (name, "{channel}")), key=lambda p: -len(p[0])):
            text = text.replace(value, placeholder)
        templates.add(text)
    if not regions:
        return None
    if len(templates) != 1 or len(kinds) != 1:
        raise _fail(
            f"the signal's MC-statistics modifiers follow no single convention ({', '.join(sorted(templates))})", where
        )
    if len(lumi) > 1:
        raise _fail(f"the signal has several lumi modifiers ({', '.join(sorted(lumi))})", where)
    return Conventions(tuple(regions), excluded, next(iter(lumi), None), kinds.pop(), templates.pop())


def _skeleton(ws: dict[str, Any]) -> dict[str, Any]:
    """A copy of a workspace deep enough for a signal patch to apply (hundreds per archive: no deep copy).

    Channel, sample and modifier lists are new; the numbers and modifier objects are shared, which
    is enough for patches that add samples and remove channels, as published ones do.
    """
    return {
        "channels": [
            {
                **c,
                "samples": [
                    {**s, "data": list(s["data"]), "modifiers": list(s.get("modifiers", []))} for s in c["samples"]
                ],
            }
            for c in ws["channels"]
        ],
        "observations": [dict(o) for o in ws["observations"]],
        "measurements": copy.deepcopy(ws["measurements"]),
        "version": ws.get("version", "1.0.0"),
    }


def merge_conventions(found: list[Conventions], channels: list[str], where: Path) -> Conventions:
    """One workspace's conventions from those of all its published patches.

    Points may fill different channels (a control region only some signals reach): the regions are
    every channel some patch fills; the modifier conventions must be the same for all.
    """
    kinds = {(c.lumi_modifier, c.mcstat_type, c.mcstat_modifier) for c in found}
    if len(kinds) != 1:
        raise _fail(
            "the published patches of this workspace use different lumi or MC-statistics modifiers ("
            + "; ".join(sorted(str(k) for k in kinds))
            + ")",
            where,
        )
    regions = {r for c in found for r in c.regions}
    excluded = {e for c in found for e in c.excluded}
    both = regions & excluded
    if both:
        raise _fail(f"channel(s) {', '.join(sorted(both))} are filled by some patches and removed by others", where)
    lumi, kind, template = kinds.pop()
    return Conventions(
        tuple(c for c in channels if c in regions), tuple(c for c in channels if c in excluded), lumi, kind, template
    )


def point_values(name: str) -> list[float]:
    """The numbers in a published point name (``sbottom_1300_205_60`` -> [1300, 205, 60])."""
    return [float(t.replace("p", ".")) for t in re.split(r"[_\-]", name) if NUMBER.match(t)]


def _point_name(member: str) -> str:
    """A per-point patch's point: its file name without ``patch.`` / ``patch_`` and ``.json``."""
    stem = PurePosixPath(member).name[: -len(".json")]
    for prefix in ("patch.", "patch_"):
        if stem.startswith(prefix):
            return stem[len(prefix) :]
    return stem


# -- writing -----------------------------------------------------------------------------------------
def _poi(ws: _Published) -> str:
    pois = {m["config"]["poi"] for m in ws.doc["measurements"]}
    if len(pois) != 1:
        raise _fail(
            f"its measurements have {len(pois)} POIs ({', '.join(sorted(pois))}); one is expected",
            ws.path,
            "measurements",
        )
    return pois.pop()


def _grid(
    found: WorkspaceFound,
    analysis_id: str,
    grid_name: str,
    source_ref: Callable[[_Published], str],
    *,
    skip: frozenset[str] | set[str] = frozenset(),
) -> tuple[dict[str, Any], list[str]]:
    """The grid document of a workspace's published points (less ``skip``, by name or member), and the parameters."""
    if found.patchset is not None:
        meta = found.patchset.doc["metadata"]
        labels = [str(x) for x in meta["labels"]]
        params = {label: {"label": label} for label in labels}
        points: list[dict[str, Any]] = []
        for p in found.patchset.doc["patches"]:
            name = str(p["metadata"]["name"])
            if name in skip:
                continue
            points.append({"name": _safe_point(name), "values": dict(zip(labels, map(float, p["metadata"]["values"])))})
        doc = {"patchset": source_ref(found.patchset)}
    else:
        named = sorted(
            ((_point_name(p.member), p) for p in found.patches if p.member not in skip), key=lambda item: item[0]
        )
        counts = {len(point_values(n)) for n, _ in named}
        if len(counts) != 1 or 0 in counts:
            raise _fail(
                f"the patch names carry {' or '.join(map(str, sorted(counts)))} numbers each; a grid needs "
                "the same count in every name (its parameters)",
                found.patches[0].path.parent,
            )
        labels = [f"p{i + 1}" for i in range(counts.pop())]
        params = {k: {"label": f"parameter {i + 1} of the patch names"} for i, k in enumerate(labels)}
        points = [
            {"name": _safe_point(n), "values": dict(zip(labels, point_values(n))), "patch": source_ref(p)}
            for n, p in named
        ]
        doc = {}
    seen: set[str] = set()
    for p in points:
        if p["name"] in seen:
            raise _fail(f"two published points are called {p['name']!r}", found.ws.path)
        seen.add(p["name"])
    grid = {
        "name": grid_name,
        "analysis": analysis_id,
        "workspace": found.name,
        "description": f"The published signal points of {analysis_id} {found.name} (written by recastflow bundle new).",
        "parameters": params,
        **doc,
        "points": points,
    }
    return grid, labels


def _safe_point(name: str) -> str:
    return _source_key(name, set())[:100]


def _sources_doc(
    containers: list[_Container], used: dict[str, set[str]], origin: dict[str, str], *, top: _Container
) -> dict[str, Any]:
    """The ``sources`` entries: the archive (with its origin), nested archives ``within`` it, loose files."""
    out: dict[str, Any] = {}
    files = {c.key: c.file for c in containers}
    for c in containers:
        if c.key not in used and not any(o.within and o.within[0] == c.key and o.key in used for o in containers):
            continue  # an archive nothing is read from (and no archive read from is inside it)
        entry: dict[str, Any] = {
            "description": f"published likelihood archive {c.file}"
            if c.unpack != "none"
            else f"published file {c.file} of the folder {top.file}"
        }
        if c.within is not None:
            entry["description"] = f"archive {c.within[1]} inside {files[c.within[0]]}"
            entry["within"] = {"source": c.within[0], "member": c.within[1]}
        elif c is top:
            entry.update(origin)
        entry["file"] = c.file
        if c.path is not None:
            entry["size"] = c.path.stat().st_size
            entry["sha256"] = fetch.sha256_file(c.path)
        else:  # a fetched record: the cache holds it unpacked, verified against these
            if c.size is not None:
                entry["size"] = c.size
            entry["sha256"] = c.sha256
        members = sorted(used.get(c.key, set()))
        if members:
            entry["members"] = {
                k: v
                for k, v in (
                    ("workspaces", [m for m in members if m.startswith("ws:")]),
                    ("patches", [m for m in members if m.startswith("patch:")]),
                )
                if v
            }
            entry["members"] = {k: [m.split(":", 1)[1] for m in v] for k, v in entry["members"].items()}
        out[c.key] = entry
    return out


def new_bundle(
    given: Path | None,
    analysis_id: str,
    output_dir: Path,
    signals_dir: Path,
    *,
    doi: str | None = None,
    url: str | None = None,
    record: str | None = None,
    arxiv: str | None = None,
    title: str | None = None,
    force: bool = False,
    import_to_cache: bool = True,
    fetched: fetch.Source | None = None,
) -> Result:
    """Write ``<output_dir>/analysis.yaml`` and a grid per workspace from a likelihood archive.

    Args:
        given: a ``.tar``/``.tar.gz``/``.tgz``/``.zip`` archive, or a folder holding an unpacked one.
        analysis_id: the bundle id (the folder name of ``output_dir`` must equal it).
        output_dir: the bundle folder to write (refused if it has an ``analysis.yaml``, unless ``force``).
        signals_dir: folder for the grid files (``<id>_<workspace>.yaml``).
        doi: the HEPData resource DOI of the archive (``10.17182/hepdata.N.vV/rR``).
        url: a download URL instead of, or besides, the DOI.
        record: the HEPData record (``insNNNNNNN``).
        arxiv: the paper's arXiv number.
        title: the paper's title.
        force: overwrite an existing bundle and grids.
        import_to_cache: put the archive into the fetch cache (verified), so the bundle works at once.
        fetched: instead of ``given``, a source already fetched (``--from-record``): its cache folder is read.

    Raises:
        RecastError: one line naming the file and the problem (unknown layout, corrupt or unsafe
            archive, a patch that does not apply, a folder given as input: its files are no
            published archive with a checksum of its own).
    """
    if fetched is not None:
        if fetched.unpack not in ("tar", "zip"):
            raise _fail("is not a tar or zip archive: a likelihood record is one", fetched.file, "--file")
        given = fetched.directory
    elif given is None:
        raise _fail("give an archive or folder", "bundle new", "--from-archive")
    given = Path(given)
    analysis_path = output_dir / "analysis.yaml"
    if output_dir.name != analysis_id:
        raise _fail(f"the bundle folder must be named like the id {analysis_id!r}", output_dir, "--output-dir")
    if analysis_path.exists() and not force:
        raise _fail("exists: give --force to overwrite it", analysis_path, "--output-dir")
    work = Path(tempfile.mkdtemp(prefix="recastflow-bundle-new."))
    try:
        containers = _containers(given, work, record=fetched)
        found = find_workspaces(containers)
        used: dict[str, set[str]] = {}
        loose: dict[str, _Container] = {}  # files of a folder given as input, by member

        def source_key(item: _Published) -> str:
            """The source of a published file; a folder's files are sources of their own (each with its sha256)."""
            if item.container.unpack != "none":
                used.setdefault(item.container.key, set())
                return item.container.key
            if item.member not in loose:
                taken = {c.key for c in containers} | {c.key for c in loose.values()}
                stem = item.member[: -len(".json")].replace("/", "_")
                loose[item.member] = _Container(
                    _source_key(stem, taken), item.path.name, item.path, item.path.parent, "none"
                )
            return loose[item.member].key

        def source_ref(item: _Published) -> str:
            key = source_key(item)
            return f"source:{key}" if item.container.unpack == "none" else f"source:{key}/{item.member}"

        workspaces: dict[str, Any] = {}
        signal: dict[str, Any] | None = None
        grids: list[tuple[str, dict[str, Any]]] = []
        notes: list[str] = []
        slug = analysis_id
        for f in found:
            poi = _poi(f.ws)
            if f.patchset is not None:
                first = f.patchset.doc["patches"][0]["patch"] if f.patchset.doc["patches"] else None
                if first is None:
                    raise _fail("the PatchSet has no patches", f.patchset.path, "patches")
                each = [(p["patch"], f.patchset.path, str(p["metadata"]["name"])) for p in f.patchset.doc["patches"]]
            else:
                each = [(p.doc, p.path, p.member) for p in sorted(f.patches, key=lambda p: p.member)]
            # every patch is read: a point may fill a channel that others leave empty
            read = [(conventions(f.ws.doc, ops, poi, where), name) for ops, where, name in each]
            empty = {name for conv, name in read if conv is None}
            if len(empty) == len(read):
                raise _fail("no published patch of this workspace adds a signal sample", each[0][1])
            if empty:
                notes.append(
                    f"{f.name}: {len(empty)} published patch(es) add no signal sample (no likelihood in the "
                    f"POI), left out of the grid: {', '.join(sorted(empty)[:3])}{', ...' if len(empty) > 3 else ''}"
                )
            c = merge_conventions(
                [conv for conv, _ in read if conv is not None], [ch["name"] for ch in f.ws.doc["channels"]], each[0][1]
            )
            this_signal = {
                "poi": poi,
                "mcstat_modifier": c.mcstat_modifier,
                "mcstat_type": c.mcstat_type,
                "lumi_modifier": c.lumi_modifier,
            }
            if signal is not None and signal != this_signal:
                raise _fail(
                    f"the signal convention differs between workspaces ({signal} and {this_signal}); one "
                    "bundle has one",
                    f.ws.path,
                )
            signal = this_signal
            bins = {ch["name"]: len(ch["samples"][0]["data"]) for ch in f.ws.doc["channels"]}
            ws_key = source_key(f.ws)
            used.setdefault(ws_key, set()).add(f"ws:{f.ws.member}")
            workspaces[f.name] = {
                "source": ws_key,
                **({"member": f.ws.member} if f.ws.container.unpack != "none" else {}),
                "digest": fetch.json_digest(f.ws.doc),
                "regions": {r: {"channel": r, "bins": bins[r]} for r in c.regions},
                "exclude_channels": list(c.excluded),
            }
            if f.patches and f.patches[0].container.unpack == "none":
                pass  # loose files: each patch is a source of its own
            elif f.patchset is not None:
                used.setdefault(source_key(f.patchset), set()).add(f"patch:{f.patchset.member}")
            else:
                folder = PurePosixPath(f.patches[0].member).parent
                used.setdefault(f.patches[0].container.key, set()).add(
                    f"patch:{(folder / 'patch*.json').as_posix() if str(folder) != '.' else 'patch*.json'}"
                )
            grid_name = f"{slug}_{f.name}" if len(found) > 1 else slug
            grid, _ = _grid(f, analysis_id, grid_name, source_ref, skip=empty)
            grids.append((grid_name, grid))
        origin: dict[str, str] = {}
        if doi:
            origin["doi"] = doi
        if url:
            origin["url"] = url
        doc: dict[str, Any] = {
            "id": analysis_id,
            "title": title or f"{analysis_id} (title to add)",
            "paper": {"arxiv": arxiv or "unknown"},
            "hepdata": {"record": record or PLACEHOLDER_RECORD, **({"doi": doi.split(".v")[0]} if doi else {})},
            "sources": _sources_doc(
                [c for c in containers if c.unpack != "none"] + list(loose.values()), used, origin, top=containers[0]
            ),
            "workspaces": workspaces,
            "signal": signal,
            "references": [],
        }
        grid_paths = [signals_dir / f"{name}.yaml" for name, _ in grids]
        for path in grid_paths:
            if path.exists() and not force:
                raise _fail("exists: give --force to overwrite it", path, "--signals-dir")
        _validate(doc, grids, analysis_path)
        header = (
            f"# {analysis_id}: written by `recastflow bundle new` from {containers[0].file}.\n"
            "# The published files are not part of the project: `sources` names them (sha256, members, "
            "workspace digests)\n# and `recastflow fetch` puts them in the cache. Regions are the channels "
            "the published patches fill;\n# exclude_channels the channels they remove.\n"
        )
        from recastflow.core.io import write_text_atomic

        output_dir.mkdir(parents=True, exist_ok=True)
        write_text_atomic(analysis_path, header + yaml.safe_dump(doc, sort_keys=False, allow_unicode=True, width=110))
        signals_dir.mkdir(parents=True, exist_ok=True)
        for (name, grid), path in zip(grids, grid_paths):
            write_text_atomic(
                path,
                f"# {name}: the published points of {analysis_id} {grid['workspace']} "
                "(recastflow bundle new); add xsec_pb per point for limits in pb.\n"
                + yaml.safe_dump(grid, sort_keys=False, allow_unicode=True, width=110),
            )
        if import_to_cache:
            from recastflow.analyses.bundle import sources_of

            sources = sources_of(doc, analysis_path)
            locals_ = {c.key: c.path for c in containers + list(loose.values())}
            for key, source in sources.items():
                local = locals_.get(key) if source.within is None else None
                fetch.obtain(source, local=local)
        todo = notes + _todo(doc, grids, doi=doi, url=url)
        return Result(analysis_path, grid_paths, todo)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _validate(doc: dict[str, Any], grids: list[tuple[str, dict[str, Any]]], where: Path) -> None:
    """Schema-check what is about to be written (a bug here must not leave an invalid bundle behind)."""
    from recastflow.core.config import validate

    validate(copy.deepcopy(doc), "analysis", where)
    for name, grid in grids:
        validate(copy.deepcopy(grid), "signals", where.parent / f"{name}.yaml")


def _todo(
    doc: dict[str, Any], grids: list[tuple[str, dict[str, Any]]], *, doi: str | None, url: str | None
) -> list[str]:
    """What the files cannot say: the lines printed after writing the bundle."""
    todo = []
    if not doi and not url:
        todo.append(
            "sources.likelihoods.doi: the HEPData resource DOI of the archive (without it the archive is "
            "found only in the cache or a RECASTFLOW_MIRROR folder)"
        )
    if doc["hepdata"]["record"] == PLACEHOLDER_RECORD:
        todo.append(f"hepdata.record: the record (insNNNNNNN); {PLACEHOLDER_RECORD} stands in for it")
    if doc["paper"]["arxiv"] == "unknown" or "to add" in doc["title"]:
        todo.append("title, paper.arxiv (and luminosity_ifb, sqrt_s_tev)")
    per_point = any("patchset" not in g for _, g in grids)
    todo.append(
        "xsec_pb and xsec_source per point of "
        + ", ".join(n for n, _ in grids)
        + " (CLs needs none; upper limits in pb do)"
    )
    if per_point:
        todo.append(
            "parameter names and labels (p1, p2, ... are the numbers of the patch names, in order) "
            "and the grids' plot axes (plot: {x: ..., y: ...})"
        )
    else:
        todo.append("the grids' plot axes (plot: {x: ..., y: ...}) and parameter labels with units")
    todo.append("references: published CLs or upper limits the bundle must reproduce (none yet: unverified)")
    return todo


def from_record(doi: str, file: str, sha256: str, *, size: int | None = None) -> fetch.Source:
    """Fetch a HEPData likelihood record (cache, mirror, then the DOI) and return its verified source.

    Args:
        doi: the resource DOI, e.g. ``10.17182/hepdata.89408.v3/r2``.
        file: the archive's file name as published (mirror folders are searched for it).
        sha256: its sha256 (from the record page or a trusted copy): the fetch refuses other bytes.
        size: its size in bytes, if known.
    """
    source = fetch.source_from_doc(
        "likelihoods",
        {"doi": doi, "file": file, "sha256": sha256.lower(), **({"size": size} if size is not None else {})},
    )
    fetch.ensure(source)
    return source


def summary(result: Result) -> str:
    """The lines ``recastflow bundle new`` prints: what it wrote, and what a person still has to add."""
    lines = [
        f"wrote {result.analysis_yaml}",
        *(f"wrote {g} ({_count_points(g)} published points)" for g in result.grids),
        "still to add by hand:",
    ]
    lines += [f"  - {item}" for item in result.todo]
    return "\n".join(lines)


def _count_points(path: Path) -> int:
    doc = yaml.safe_load(path.read_text())
    return len(doc.get("points", []))
