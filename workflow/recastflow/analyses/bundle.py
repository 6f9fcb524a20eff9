"""Preserved analysis bundles and signal grids as small typed records."""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from recastflow.analyses import fetch
from recastflow.analyses.fetch import Source
from recastflow.core.config import inside, load_validated, loads_json, read_document
from recastflow.core.errors import RecastError


@dataclass(frozen=True)
class Region:
    """An analysis region and the workspace channel it maps onto."""

    name: str
    channel: str
    bins: int


@dataclass(frozen=True)
class WorkspaceRef:
    """A background-only workspace of a bundle, with what its content must be.

    A workspace written for the bundle is a file in its folder, checked by sha256. A published one
    is a member of a declared source (:mod:`recastflow.analyses.fetch`): ``path`` is where the fetch puts
    it, and its content is checked by pyhf's workspace digest, so a re-serialised copy of the same
    JSON is accepted and anything else refused.
    """

    name: str
    path: Path
    sha256: str | None
    regions: tuple[Region, ...]
    exclude_channels: tuple[str, ...] = ()
    poi: str | None = None
    bundle: Path | None = None
    source: Source | None = None
    member: str | None = None
    digest: str | None = None

    def fetch(self) -> Path:
        """Make a published workspace available (cache, mirror or network) and return its path."""
        if self.source is not None:
            member = self.member or self.source.content_name
            fetch.ensure(self.source, {member: self.digest})
        return self.path

    def load(self, *, validate: bool = True) -> dict[str, Any]:
        """Read the workspace after checking its sha256 or digest, pyhf's workspace schema and its numbers.

        Observations must be finite and >= 0, as must every background yield and modifier
        datum (:func:`recastflow.stats.workspace_check.check_workspace`); the measurements' POI must be
        the bundle's. Observations are not required to be integers: the bundle does not say
        whether a workspace's data are event counts. A published workspace not fetched yet is
        fetched first.

        Args:
            validate: check pyhf's schema and the numbers. Jobs that check the patched workspace
                anyway pass False: the sha256 already ties the file to the one checked before.
        """
        self.fetch()
        if not self.path.is_file():
            raise RecastError("background-only workspace not found", path=str(self.path))
        raw = self.path.read_bytes()
        if self.sha256 is not None:
            digest = hashlib.sha256(raw).hexdigest()
            if digest != self.sha256:
                raise RecastError(
                    f"sha256 is {digest}, the bundle expects {self.sha256}; "
                    "the file was changed or replaced: restore the published file or update analysis.yaml",
                    path=str(self.path),
                )
        import pyhf  # not at the top: a second to import, and most commands reading a bundle never need it

        from recastflow.stats import pyhfschema
        from recastflow.stats.workspace_check import check_workspace

        spec = loads_json(raw, self.path)
        if self.digest is not None:
            got = fetch.json_digest(spec)
            if got != self.digest:
                # the cache is verified when filled: a mismatch here means the file was edited since
                raise RecastError(
                    f"content digest is {got}, the bundle expects {self.digest}: the cached file was "
                    f"changed; delete {self.path.parent} from the cache and fetch again",
                    path=str(self.path),
                )
        if validate:
            try:
                pyhfschema.validate(spec, "workspace.json")
            except pyhf.exceptions.InvalidSpecification as exc:
                raise RecastError(
                    f"not a valid pyhf workspace: {str(exc).splitlines()[0]}", path=str(self.path)
                ) from None
            # the POI is the signal's: a background-only workspace has no sample that carries it
            check_workspace(spec, self.path, what="background-only workspace", poi=False)
            self._check_poi(spec)
        self._check_regions(spec)
        return spec

    def _check_poi(self, spec: dict[str, Any]) -> None:
        if self.poi is None:
            return
        for measurement in spec["measurements"]:
            if measurement["config"]["poi"] != self.poi:
                # the published workspace is right by definition: the bundle is what to correct
                raise RecastError(
                    f"{self.poi!r} is not the workspace's POI: measurement {measurement['name']!r} of {self.path} "
                    f"has POI {measurement['config']['poi']!r}; set signal.poi to the workspace's POI",
                    path=str(self.bundle) if self.bundle else None,
                    field="signal.poi",
                )

    def _check_regions(self, spec: dict[str, Any]) -> None:
        channels = {c["name"]: len(c["samples"][0]["data"]) for c in spec["channels"]}
        for region in self.regions:
            if region.channel not in channels:
                raise RecastError(
                    f"region {region.name!r} maps to channel {region.channel!r}, which the workspace does not have "
                    f"(it has: {', '.join(channels)})",
                    path=str(self.path),
                )
            if channels[region.channel] != region.bins:
                raise RecastError(
                    f"region {region.name!r} declares {region.bins} bins, channel {region.channel!r} has "
                    f"{channels[region.channel]}",
                    path=str(self.path),
                )
        for name in self.exclude_channels:
            if name not in channels:
                raise RecastError(
                    f"exclude_channels names {name!r}, not a channel of the workspace", path=str(self.path)
                )


@dataclass(frozen=True)
class Reference:
    """A published or regression value that a result must reproduce."""

    grid: str
    point: str
    quantity: str
    value: float | tuple[float, ...]
    rtol: float
    atol: float
    source: str


@dataclass(frozen=True)
class YieldReference:
    """A point with ATLAS's own signal patch, against which front-end yields are compared."""

    values: dict[str, float]
    patch: Path
    rtol: float
    note: str = ""


@dataclass(frozen=True)
class YieldReferences:
    """The bundle's published signal yields and how closely the front end must reproduce them."""

    signal_regions: tuple[str, ...]
    rtol: float
    min_events: float
    source: str
    points: tuple[YieldReference, ...]

    def for_values(self, values: dict[str, float]) -> YieldReference | None:
        """The reference of the point with these parameter values, if there is one."""
        for ref in self.points:
            if all(abs(values.get(k, float("nan")) - v) < 1e-9 for k, v in ref.values.items()):
                return ref
        return None


@dataclass(frozen=True)
class Analysis:
    """A preserved analysis: metadata, workspaces, signal convention, references."""

    id: str
    title: str
    folder: Path
    paper: dict[str, str]
    hepdata: dict[str, str]
    workspaces: dict[str, WorkspaceRef]
    poi: str
    mcstat_modifier: str
    lumi_modifier: str | None
    references: tuple[Reference, ...] = field(default=())
    selection: Path | None = None
    yield_references: YieldReferences | None = None
    luminosity_ifb: float | None = None
    sources: dict[str, Source] = field(default_factory=dict)
    doc: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)
    #: "staterror" or "shapesys": how the likelihood carries the signal's MC statistics
    mcstat_type: str = "staterror"

    def mcstat_name(self, channel: str, sample: str) -> str:
        """The name of the signal's MC-statistics modifier in ``channel`` for the sample ``sample``."""
        return self.mcstat_modifier.format(channel=channel, sample=sample)

    def expected_members(self) -> dict[str, dict[str, str | None]]:
        """For each source, the members the bundle reads and the content digest each must have (or None)."""
        out: dict[str, dict[str, str | None]] = {name: {} for name in self.sources}
        for ws in self.workspaces.values():
            if ws.source is not None:
                out[ws.source.name][ws.member or ws.source.content_name] = ws.digest
        if self.yield_references is not None:
            for ref in self.yield_references.points:
                for name, source in self.sources.items():
                    if ref.patch.is_relative_to(source.directory):
                        out[name].setdefault(ref.patch.relative_to(source.directory).as_posix(), None)
        for name, src in self.doc.get("sources", {}).items():
            for member in src.get("members", {}).get("workspaces", []):
                out[name].setdefault(member, None)
        return out

    def fetch_sources(self) -> dict[str, Path]:
        """Fetch every source of the bundle (cache, then mirror, then network), verified; their folders by name."""
        return {name: folder for name, (folder, _) in self.obtain_sources().items()}

    def obtain_sources(self) -> dict[str, tuple[Path, str]]:
        """Fetch every source of the bundle; by name, its cache folder and where it came from."""
        expected = self.expected_members()
        out = {}
        for name, source in self.sources.items():
            out[name] = fetch.obtain(source, expected[name])
            _check_patch_globs(source, self.doc["sources"][name], self.folder / "analysis.yaml")
        return out

    def workspace(self, name: str, *, source: Path | str = "") -> WorkspaceRef:
        """Return a workspace by name or a clear error listing the valid names."""
        if name not in self.workspaces:
            raise RecastError(
                f"analysis {self.id} has no workspace {name!r} (it has: {', '.join(self.workspaces)})",
                path=str(source) or None,
                field="workspace",
            )
        return self.workspaces[name]


def load_analysis(analysis_id: str, analyses_dir: Path) -> Analysis:
    """Load ``<analyses_dir>/<analysis_id>/analysis.yaml``.

    Args:
        analysis_id: the bundle's folder name.
        analyses_dir: folder holding the bundles.
    """
    folder = analyses_dir / analysis_id
    path = folder / "analysis.yaml"
    if not path.is_file():
        have = (
            sorted(p.name for p in analyses_dir.iterdir() if (p / "analysis.yaml").is_file())
            if analyses_dir.is_dir()
            else []
        )
        raise RecastError(
            f"no analysis bundle {analysis_id!r} (bundles here: {', '.join(have) or 'none'})", path=str(path)
        )
    doc = load_validated(path, "analysis")
    if doc["id"] != analysis_id:
        raise RecastError(f"id {doc['id']!r} differs from the folder name {analysis_id!r}", path=str(path), field="id")
    sources = sources_of(doc, path)
    workspaces = {}
    for name, ws in doc["workspaces"].items():
        regions = tuple(Region(r, v["channel"], v["bins"]) for r, v in ws["regions"].items())
        mapped = {r.channel: r.name for r in regions}
        for channel in ws.get("exclude_channels", []):
            if channel in mapped:
                # the fit would lose the region: CLs = 1 everywhere, which would look like a trusted result
                raise RecastError(
                    f"{channel!r} is the channel of region {mapped[channel]!r}; a mapped region cannot be excluded "
                    "from the fit: remove it from exclude_channels (or the region from regions)",
                    path=str(path),
                    field=f"workspaces.{name}.exclude_channels",
                )
        source = member = None
        if "source" in ws:
            if ws["source"] not in sources:
                raise RecastError(
                    f"{ws['source']!r} is not an entry of 'sources' (entries: {', '.join(sources) or 'none'})",
                    path=str(path),
                    field=f"workspaces.{name}.source",
                )
            source = sources[ws["source"]]
            if source.unpack in ("tar", "zip") and "member" not in ws:
                raise RecastError(
                    f"source {source.name!r} is an archive: give the workspace's 'member' (its path inside)",
                    path=str(path),
                    field=f"workspaces.{name}",
                )
            member = ws.get("member") or source.content_name
            if "member" in ws:
                fetch.safe_member_name(member, source=source)  # refuse '..' or absolute paths up front
            ws_path = source.path(member)
        else:
            ws_path = inside(folder, ws["file"], source=path, field=f"workspaces.{name}.file")
        workspaces[name] = WorkspaceRef(
            name=name,
            path=ws_path,
            sha256=ws.get("sha256"),
            regions=regions,
            exclude_channels=tuple(ws.get("exclude_channels", [])),
            poi=doc["signal"]["poi"],
            bundle=path,
            source=source,
            member=member,
            digest=ws.get("digest"),
        )
    refs = tuple(
        Reference(
            grid=r["grid"],
            point=r["point"],
            quantity=r["quantity"],
            value=tuple(r["value"]) if isinstance(r["value"], list) else r["value"],
            rtol=r.get("rtol", 1e-5),
            atol=r.get("atol", 0.0),
            source=r["source"],
        )
        for r in doc.get("references", [])
    )
    sig = doc["signal"]
    yrefs = None
    if "yield_references" in doc:
        yr = doc["yield_references"]
        where = "yield_references"
        yrefs = YieldReferences(
            signal_regions=tuple(yr["signal_regions"]),
            rtol=yr.get("rtol", 0.25),
            min_events=yr.get("min_events", 5),
            source=yr["source"],
            points=tuple(
                YieldReference(
                    values=dict(p["values"]),
                    patch=resolve_path(p["patch"], folder, sources, source=path, field=f"{where}.points[{i}].patch"),
                    rtol=p.get("rtol", yr.get("rtol", 0.25)),
                    note=p.get("note", ""),
                )
                for i, p in enumerate(yr["points"])
            ),
        )
        known = {r.name for ws in workspaces.values() for r in ws.regions}
        for name in yrefs.signal_regions:
            if name not in known:
                raise RecastError(
                    f"{name!r} is not a region of any workspace (regions: {', '.join(sorted(known))})",
                    path=str(path),
                    field=f"{where}.signal_regions",
                )
    return Analysis(
        id=doc["id"],
        title=doc["title"],
        folder=folder,
        paper=doc["paper"],
        hepdata=doc["hepdata"],
        workspaces=workspaces,
        poi=sig["poi"],
        mcstat_modifier=sig.get("mcstat_modifier", "staterror_{channel}"),
        mcstat_type=sig.get("mcstat_type", "staterror"),
        lumi_modifier=sig.get("lumi_modifier", "lumi"),
        references=refs,
        selection=inside(folder, doc["selection"], source=path, field="selection") if "selection" in doc else None,
        yield_references=yrefs,
        luminosity_ifb=doc.get("luminosity_ifb"),
        sources=sources,
        doc=doc,
    )


SOURCE_PREFIX = "source:"


def fetch_bundles(
    analysis_ids: list[str],
    analyses_dir: Path,
    *,
    manifest: Path | None = None,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Fetch the sources of bundles into the cache and describe what was fetched.

    Args:
        analysis_ids: bundle folder names (empty: every bundle in ``analyses_dir``).
        analyses_dir: folder holding the bundles.
        manifest: if given, a JSON file written (atomically) with each source's file, sha256,
            origin and cache folder: the workflow's fetch step leaves it for the jobs that use them.
        log: called with one line per source.

    Returns:
        The manifest: ``{analysis id: {source name: {...}}}``.
    """
    from recastflow.core.io import write_json_atomic

    if not analysis_ids:
        analysis_ids = sorted(p.parent.name for p in analyses_dir.glob("*/analysis.yaml"))
    doc: dict[str, Any] = {}
    for analysis_id in analysis_ids:
        analysis = load_analysis(analysis_id, analyses_dir)
        doc[analysis_id] = {}
        for name, (folder, origin) in analysis.obtain_sources().items():
            src = analysis.sources[name]
            doc[analysis_id][name] = {
                "file": src.file,
                "sha256": src.sha256,
                "origin": src.origin,
                "cache": str(folder),
                "from": origin.split(" ")[0],
            }
            if log is not None:
                log(f"{analysis_id} {name}: {src.file} ({origin})")
    if manifest is not None:
        write_json_atomic(manifest, doc)
    return doc


def resolve_path(text: str, base: Path, sources: dict[str, Source], *, source: Path, field: str) -> Path:
    """A path written in a bundle or grid: relative to ``base``, or ``source:<name>[/<member>]``.

    ``source:`` paths name a published file of the bundle's ``sources``; they resolve to where the
    fetch puts it in the cache (known without fetching; ``recastflow fetch`` or the workflow's fetch
    step fills it).

    Args:
        text: the path as written.
        base: folder that relative paths are relative to.
        sources: the bundle's sources by name.
        source: the file that contains the path (for messages).
        field: the key that contains it (for messages).
    """
    if not text.startswith(SOURCE_PREFIX):
        return inside(base, text, source=source, field=field)
    name, _, member = text[len(SOURCE_PREFIX) :].partition("/")
    if name not in sources:
        raise RecastError(
            f"{text!r} names source {name!r}, which the bundle does not declare "
            f"(its sources: {', '.join(sources) or 'none'})",
            path=str(source),
            field=field,
        )
    src = sources[name]
    if not member:
        if src.unpack in ("tar", "zip"):
            return src.directory
        return src.path()
    if src.unpack not in ("tar", "zip"):
        raise RecastError(
            f"source {name!r} is a single file, not an archive: write {SOURCE_PREFIX}{name} without a member",
            path=str(source),
            field=field,
        )
    fetch.safe_member_name(member, source=src)
    return src.path(member)


def fetched_path(text: str, base: Path, sources: dict[str, Source], *, source: Path, field: str) -> Path:
    """Like :func:`resolve_path`, but a ``source:`` path is fetched (cache, mirror, network) before it is returned.

    For files read at once by the command that names them (an ONNX model of a selection, its scaling
    file), where no workflow step fetched them beforehand. The fetch verifies the source's sha256 and,
    for an archive, that the member exists; any failure is the fetch layer's one-line error.

    Args:
        text: the path as written.
        base: folder that relative paths are relative to.
        sources: the file's sources by name.
        source: the file that contains the path (for messages).
        field: the key that contains it (for messages).
    """
    path = resolve_path(text, base, sources, source=source, field=field)
    if text.startswith(SOURCE_PREFIX):
        name, _, member = text[len(SOURCE_PREFIX) :].partition("/")
        fetch.ensure(sources[name], {member: None} if member else None)
    return path


def sources_of(doc: dict[str, Any], path: Path) -> dict[str, Source]:
    """The ``sources`` of a schema-validated document (bundle or selection file) as :class:`Source` records."""
    out: dict[str, Source] = {}
    for name, src in doc.get("sources", {}).items():
        # in file order: an archive published inside another names that one, declared above it
        out[name] = fetch.source_from_doc(name, src, path, out)
    return out


def _check_patch_globs(source: Source, doc: dict[str, Any], bundle: Path) -> None:
    """Each ``members.patches`` pattern of a fetched archive must match at least one member."""
    for pattern in doc.get("members", {}).get("patches", []):
        if source.unpack in ("tar", "zip") and not any(source.directory.glob(pattern)):
            raise RecastError(
                f"no member of {source.file} matches {pattern!r}",
                path=str(bundle),
                field=f"sources.{source.name}.members.patches",
            )


def _grid_sources(doc: dict[str, Any], analyses_dir: Path) -> dict[str, Source]:
    """The sources of a grid's bundle when the grid names one (``source:`` paths), else none (no bundle read)."""
    texts = [doc.get("patchset", ""), doc.get("patch_directory", {}).get("path", "")]
    texts += [p.get("patch", "") for p in doc["points"]]
    if not any(t.startswith(SOURCE_PREFIX) for t in texts):
        return {}
    return load_analysis(doc["analysis"], analyses_dir).sources


@dataclass(frozen=True)
class ReweightRef:
    """Where a reweighted point's yields come from: a source point, a spec, parameter values.

    Attributes:
        source: (grid, point) whose selected events are reweighted.
        spec: the reweighting spec file.
        parameters: values given under ``reweight.parameters``.
        compare_with: (grid, point) generated directly at this hypothesis, for the closure check.
    """

    source: tuple[str, str]
    spec: Path
    parameters: dict[str, float]
    compare_with: tuple[str, str] | None = None


@dataclass(frozen=True)
class Point:
    """One signal hypothesis of a grid."""

    name: str
    values: dict[str, float]
    patch: Path | None = None
    yields: Path | None = None
    xsec_pb: float | None = None
    xsec_source: str | None = None
    slha: Path | None = None
    manifest: Path | None = None
    n_events: int | None = None
    reweight: ReweightRef | None = None

    @property
    def from_events(self) -> bool:
        """True when the front end makes this point's yields (generate or hand-off)."""
        return self.slha is not None or self.manifest is not None


@dataclass(frozen=True)
class EventsSpec:
    """How a grid's points get events: generator card, detector card, statistics, seed."""

    process: Path | None
    detector: Path
    seed: int
    chunks: int
    n_events: int | None


@dataclass(frozen=True)
class Grid:
    """A signal grid: points, their parameters and where their signal comes from."""

    name: str
    path: Path
    analysis: str
    workspace: str
    parameters: dict[str, dict[str, str]]
    points: tuple[Point, ...]
    plot: tuple[str, str] | None = None
    patchset: Path | None = None
    description: str = ""
    events: EventsSpec | None = None
    check_yields: bool = True

    def point(self, name: str) -> Point:
        """Return a point by name or a clear error."""
        for p in self.points:
            if p.name == name:
                return p
        raise RecastError(f"grid {self.name} has no point {name!r}", path=str(self.path))


def load_grid(name: str, signals_dir: Path, analyses_dir: Path | None = None) -> Grid:
    """Load ``<signals_dir>/<name>.yaml``; relative paths in it are relative to its folder.

    Paths written ``source:<name>[/<member>]`` (``patch``, ``patch_directory.path``, ``patchset``)
    name a published file of the grid's analysis bundle; they resolve into the fetch cache.

    Args:
        name: grid name (file stem).
        signals_dir: folder holding the grid files.
        analyses_dir: folder holding the bundles (default: ``analyses`` next to ``signals_dir``).
    """
    path = signals_dir / f"{name}.yaml"
    doc = load_validated(path, "signals")
    sources = _grid_sources(doc, analyses_dir if analyses_dir is not None else signals_dir.parent / "analyses")
    if doc["name"] != name:
        raise RecastError(f"name {doc['name']!r} differs from the file name {name!r}", path=str(path), field="name")
    base = path.parent
    config_dir = signals_dir.parent  # shared cards (processes/, detectors/) live next to signals/
    params = doc["parameters"]
    ev = doc.get("events")
    events = None
    if ev is not None:
        events = EventsSpec(
            process=inside(config_dir, ev["process"], source=path, field="events.process") if "process" in ev else None,
            detector=inside(config_dir, ev["detector"], source=path, field="events.detector"),
            seed=ev["seed"],
            chunks=ev.get("chunks", 1),
            n_events=ev.get("n_events"),
        )
    patch_dir = doc.get("patch_directory")
    points = []
    seen = set()
    for i, p in enumerate(doc["points"]):
        where = f"points[{i}]"
        if p["name"] in seen:
            raise RecastError(f"point name {p['name']!r} appears twice", path=str(path), field=where)
        seen.add(p["name"])
        missing = set(params) - set(p["values"])
        unknown = set(p["values"]) - set(params)
        if missing or unknown:
            raise RecastError(
                f"values must give exactly the grid parameters {sorted(params)}"
                + (f"; missing {sorted(missing)}" if missing else "")
                + (f"; unknown {sorted(unknown)}" if unknown else ""),
                path=str(path),
                field=f"{where}.values",
            )
        patch = yields = slha = manifest = reweight = None
        if "reweight" in p:
            rw = p["reweight"]
            reweight = ReweightRef(
                source=tuple(rw["from"].split("/")),
                spec=inside(config_dir, rw["spec"], source=path, field=f"{where}.reweight.spec"),
                parameters={k: float(v) for k, v in rw.get("parameters", {}).items()},
                compare_with=tuple(rw["compare_with"].split("/")) if "compare_with" in rw else None,
            )
            if reweight.source == (name, p["name"]):
                raise RecastError(
                    "a point cannot be reweighted from itself", path=str(path), field=f"{where}.reweight.from"
                )
            # `recastflow reweight` writes the point's yields here; `recastflow patch` reads them like a yields file
            yields = Path("results") / "reweight" / name / p["name"] / "yields.json"
        elif "manifest" in p or (events is not None and "patch" not in p and "yields" not in p):
            if events is None:
                raise RecastError(
                    "a point with 'manifest' needs the grid's 'events' section (detector card, seed)",
                    path=str(path),
                    field=where,
                )
            if "manifest" in p:
                manifest = inside(base, p["manifest"], source=path, field=f"{where}.manifest")
            else:
                pattern = p.get("slha", (ev or {}).get("slha"))
                if pattern is None or events.process is None:
                    raise RecastError(
                        "generating this point needs 'events.process' and an SLHA file "
                        "('events.slha' pattern or the point's 'slha'), or give the point a 'manifest'",
                        path=str(path),
                        field=where,
                    )
                if p.get("n_events", events.n_events) is None:
                    raise RecastError("set 'events.n_events' or the point's 'n_events'", path=str(path), field=where)
                try:
                    fname = pattern.format(**{k: format_value(v) for k, v in p["values"].items()})
                except (KeyError, IndexError, ValueError) as exc:
                    raise RecastError(
                        f"SLHA pattern {pattern!r} uses a field that is not a grid parameter ({exc})",
                        path=str(path),
                        field="events.slha",
                    ) from None
                slha = inside(base, fname, source=path, field=f"{where}.slha" if "slha" in p else "events.slha")
            # the front end writes the point's yields here; `recastflow patch` reads them like a yields file
            yields = Path("results") / "select" / name / p["name"] / "yields.json"
        elif "patch" in p:
            patch = resolve_path(p["patch"], base, sources, source=path, field=f"{where}.patch")
        elif "yields" in p:
            yields = inside(base, p["yields"], source=path, field=f"{where}.yields")
        elif patch_dir:
            fname = patch_dir["pattern"].format(**{k: format_value(v) for k, v in p["values"].items()})
            folder = resolve_path(patch_dir["path"], base, sources, source=path, field="patch_directory.path")
            patch = folder / inside(folder, fname, source=path, field="patch_directory.pattern").relative_to(folder)
            if folder.is_relative_to(fetch.cache_dir()) and folder.is_dir() and not patch.is_file():
                # the archive is fetched and has no such member: say so now, not in the patch job
                raise RecastError(
                    f"the published archive has no patch {fname!r} in {patch_dir['path']!r} for this point",
                    path=str(path),
                    field=where,
                )
        elif "patchset" not in doc:
            raise RecastError(
                "no signal given: set 'patch' or 'yields' for the point, or 'patchset'/'patch_directory' for the grid",
                path=str(path),
                field=where,
            )
        points.append(
            Point(
                name=p["name"],
                values=dict(p["values"]),
                patch=patch,
                yields=yields,
                xsec_pb=p.get("xsec_pb"),
                xsec_source=p.get("xsec_source"),
                slha=slha,
                manifest=manifest,
                n_events=p.get("n_events", events.n_events if events else None),
                reweight=reweight,
            )
        )
    patchset = (
        resolve_path(doc["patchset"], base, sources, source=path, field="patchset") if "patchset" in doc else None
    )
    if patchset is not None and not (patchset.is_relative_to(fetch.cache_dir()) and not patchset.exists()):
        _check_patchset_matches(patchset, list(params), points, path)
    plot = None
    if "plot" in doc:
        for axis in ("x", "y"):
            if doc["plot"][axis] not in params:
                raise RecastError(
                    f"{doc['plot'][axis]!r} is not a grid parameter", path=str(path), field=f"plot.{axis}"
                )
        plot = (doc["plot"]["x"], doc["plot"]["y"])
    return Grid(
        name=name,
        path=path,
        analysis=doc["analysis"],
        workspace=doc["workspace"],
        parameters=params,
        points=tuple(points),
        plot=plot,
        patchset=patchset,
        description=doc.get("description", ""),
        events=events,
        check_yields=doc.get("check_yields", True),
    )


@functools.lru_cache(maxsize=4)
def _patchset_index(path: Path, mtime_ns: int) -> tuple[list[str], list[tuple[str, tuple[float, ...]]]]:
    """The labels and (name, values) of a PatchSet's patches, without pyhf (the patch stage validates it whole)."""
    doc = read_document(path)
    try:
        labels = doc["metadata"]["labels"]
        entries = [(p["metadata"]["name"], tuple(p["metadata"]["values"])) for p in doc["patches"]]
        if not isinstance(labels, list):
            raise TypeError
    except (KeyError, TypeError) as exc:
        raise RecastError(
            f"not a pyhf PatchSet: it needs metadata.labels and patches with metadata.name and "
            f"metadata.values (missing or not a list: {exc})",
            path=str(path),
        ) from None
    return labels, entries


def _check_patchset_matches(patchset: Path, parameters: list[str], points: list[Point], grid_path: Path) -> None:
    """Check, at load (and so at ``recastflow validate``), that a PatchSet can give every point its patch.

    Points are matched by their values in the PatchSet's label order; a point's name is only the grid's.
    """
    if not patchset.is_file():
        raise RecastError(f"PatchSet {patchset} not found", path=str(grid_path), field="patchset")
    labels, entries = _patchset_index(patchset, patchset.stat().st_mtime_ns)
    if list(labels) != parameters:
        raise RecastError(
            f"the grid's parameters {parameters} differ from the labels {labels} of the PatchSet "
            f"{patchset}; name them as its labels, in the same order",
            path=str(grid_path),
            field="parameters",
        )
    by_values = {values for _, values in entries}
    by_name = dict(entries)
    for i, point in enumerate(points):
        values = tuple(point.values[k] for k in parameters)
        if point.patch is not None or point.yields is not None or values in by_values:
            continue
        given = ", ".join(f"{k}={format_value(v)}" for k, v in zip(parameters, values))
        if point.name in by_name:
            theirs = ", ".join(f"{k}={format_value(v)}" for k, v in zip(parameters, by_name[point.name]))
            raise RecastError(
                f"point {point.name!r} has {given}, but the patch of that name in {patchset} is for "
                f"{theirs}, and no patch has {given}; correct the values (points are matched by their "
                "values)",
                path=str(grid_path),
                field=f"points[{i}].values",
            )
        raise RecastError(
            f"no patch in {patchset} has the values of point {point.name!r} ({given}); correct the "
            "values or remove the point",
            path=str(grid_path),
            field=f"points[{i}].values",
        )


def format_value(value: float) -> str:
    """A parameter value as file names and messages write it: ``1300`` for 1300.0, else as it is."""
    # masses are written as integers in published file names (patch.sbottom_1300_205_60.json)
    return str(int(value)) if float(value).is_integer() else str(value)
