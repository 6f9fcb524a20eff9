"""Preserved analysis bundles and signal grids as small typed records."""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from recastflow.analyses import fetch
from recastflow.analyses.fetch import Source
from recastflow.core.config import inside, load_validated, loads_json, read_document
from recastflow.core.errors import RecastError
from recastflow.core.paths import reweight_yields, select_yields


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
    #: the workspace's own event selection (``workspaces.<name>.selection``); None: the bundle's ``selection``
    selection: Path | None = None
    #: why its signal from events is not trusted yet (``workspaces.<name>.unvalidated``); None: validated
    unvalidated: str | None = None
    #: its own published signal yields (``workspaces.<name>.yield_references``); None: the bundle's, if they cover it
    yield_references: YieldReferences | None = None

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
            # the published workspace is the fact; the bundle's declaration is what to fix: name the bundle
            where = {"path": str(self.bundle or self.path), "field": f"workspaces.{self.name}.regions.{region.name}"}
            if region.channel not in channels:
                raise RecastError(
                    f"maps to channel {region.channel!r}, which workspace {self.path.name} does not have "
                    f"(it has: {', '.join(channels)})",
                    **where,
                )
            if channels[region.channel] != region.bins:
                raise RecastError(
                    f"declares {region.bins} bins, channel {region.channel!r} of {self.path.name} has "
                    f"{channels[region.channel]}",
                    **where,
                )
        for name in self.exclude_channels:
            if name not in channels:
                raise RecastError(
                    f"names {name!r}, not a channel of workspace {self.path.name} (it has: {', '.join(channels)})",
                    path=str(self.bundle or self.path),
                    field=f"workspaces.{self.name}.exclude_channels",
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
    #: ``patch_pattern`` as written: a patch path with ``{parameter}`` fields (None: listed points only)
    patch_pattern: str | None = None
    #: the pattern's patch for a point's values, or None if the bundle has no such patch
    resolve_pattern: Callable[[dict[str, float]], Path | None] | None = field(default=None, compare=False, repr=False)

    def for_values(self, values: dict[str, float]) -> YieldReference | None:
        """The reference of the point with these parameter values, if there is one.

        A listed point wins (it may carry its own ``rtol`` and ``note``); otherwise ``patch_pattern``
        names the point's patch, if the bundle publishes one for these values.
        """
        for ref in self.points:
            if all(abs(values.get(k, float("nan")) - v) < 1e-9 for k, v in ref.values.items()):
                return ref
        if self.resolve_pattern is not None:
            patch = self.resolve_pattern(values)
            if patch is not None:
                return YieldReference(values=dict(values), patch=patch, rtol=self.rtol)
        return None


@dataclass(frozen=True)
class TheoryXsec:
    """The theory cross-section of a simplified model: a working-group table in one mass.

    Attributes:
        values: the source of the table's CSV values.
        info: the source of its ``.info`` file (columns, units).
        mass: the grid parameter that is the table's mass.
        factor: multiplies the table's value.
        description: free text.
        value_column: the table's cross-section column (None: the first value column of its ``.info``).
        at: further table parameters held at one value (e.g. NNLL-fast's gluino mass).
    """

    values: Source
    info: Source
    mass: str
    factor: float = 1.0
    description: str = ""
    value_column: str | None = None
    at: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class OfficialLimitsRef:
    """ATLAS's official exclusion of one simplified model, as a bundle declares it (``official_limits``).

    Attributes:
        model: the simplified model (a grid's ``model``).
        coordinates: grid parameter -> (branch, index) in the map's mass vectors.
        fixed: parameters held at one value in the official plane.
        upper_limits: the cross-section upper-limit map (resolved path), or None.
        upper_limits_text: the path as written (``source:<name>`` is fetched before reading).
        format: the map's format (``smodels``).
        cross_section: the theory cross-section that turns the map into a contour, or None.
        contours: official contour tables: ``{"x": param, "y": param, "observed": path, "expected": path}``.
        figure: the publication's figure (URL).
        bundle: the analysis.yaml (for messages; its folder is where relative paths start).
        sources: the bundle's sources, for the ``source:`` paths.
    """

    model: str
    coordinates: dict[str, tuple[int, int]]
    fixed: dict[str, float]
    upper_limits: Path | None
    upper_limits_text: str | None
    format: str
    cross_section: TheoryXsec | None
    contours: dict[str, Any]
    figure: str
    bundle: Path
    sources: dict[str, Source] = field(default_factory=dict, compare=False, repr=False)


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
    #: collision energy (TeV), for plot labels and HEPData qualifiers
    sqrt_s_tev: float | None = None
    #: ATLAS's official exclusions by simplified model (``official_limits``)
    official_limits: dict[str, OfficialLimitsRef] = field(default_factory=dict)

    def references_for(self, workspace: str) -> YieldReferences | None:
        """The published signal yields a grid of ``workspace`` is compared with, if any.

        The workspace's own ``yield_references`` win; the bundle's apply when the workspace's regions hold all
        their signal regions (references are matched to points by parameter values alone, and the same masses
        can have published patches in several workspaces).

        Args:
            workspace: one of the bundle's workspaces.

        Returns:
            The references, or None (an unknown workspace, or none that cover it).
        """
        ws = self.workspaces.get(workspace)
        if ws is None:
            return None
        if ws.yield_references is not None:
            return ws.yield_references
        refs = self.yield_references
        if refs is None or not set(refs.signal_regions) <= {r.name for r in ws.regions}:
            return None
        return refs

    def all_yield_references(self) -> list[YieldReferences]:
        """Every ``yield_references`` section of the bundle: its own and its workspaces'."""
        out = [self.yield_references] if self.yield_references is not None else []
        return out + [ws.yield_references for ws in self.workspaces.values() if ws.yield_references is not None]

    def mcstat_name(self, channel: str, sample: str) -> str:
        """The name of the signal's MC-statistics modifier in ``channel`` for the sample ``sample``."""
        return self.mcstat_modifier.format(channel=channel, sample=sample)

    def expected_members(self) -> dict[str, dict[str, str | None]]:
        """For each source, the members the bundle reads and the content digest each must have (or None)."""
        out: dict[str, dict[str, str | None]] = {name: {} for name in self.sources}
        for ws in self.workspaces.values():
            if ws.source is not None:
                out[ws.source.name][ws.member or ws.source.content_name] = ws.digest
        for refs in self.all_yield_references():
            for ref in refs.points:
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

    def selection_for(self, workspace: str, *, source: Path | str = "") -> Path | None:
        """The event selection file that fills a workspace's regions, or None if the bundle has none for it.

        A workspace's own ``selection`` wins; otherwise the bundle-level ``selection`` serves it (as it
        serves every workspace of a bundle with one selection).

        Args:
            workspace: the workspace's name.
            source: the file that names the workspace (a grid), for the error.

        Raises:
            RecastError: the bundle has no such workspace.
        """
        own = self.workspace(workspace, source=source).selection
        return own if own is not None else self.selection

    def events_caveat(self, workspace: str) -> str | None:
        """The flag every CLs computed from events through a workspace carries, or None if it is validated.

        Args:
            workspace: the workspace's name.
        """
        reason = self.workspace(workspace).unvalidated
        return None if reason is None else f"signal from events through {self.id} {workspace} not validated: {reason}"

    @property
    def has_selection(self) -> bool:
        """Whether some workspace of the bundle can be filled from events (a bundle or a workspace selection)."""
        return self.selection is not None or any(ws.selection is not None for ws in self.workspaces.values())

    def own_selection(self, workspace: str) -> bool:
        """Whether a workspace has a selection of its own, which then fills that workspace's regions only."""
        return self.workspace(workspace).selection is not None


def load_analysis(
    analysis_id: str, analyses_dir: Path, *, named_in: Path | str | None = None, named_by: str | None = None
) -> Analysis:
    """Load ``<analyses_dir>/<analysis_id>/analysis.yaml``.

    Args:
        analysis_id: the bundle's folder name.
        analyses_dir: folder holding the bundles.
        named_in: the file that names the bundle (a grid), named when the bundle does not exist.
        named_by: the key there that names it.
    """
    folder = analyses_dir / analysis_id
    path = folder / "analysis.yaml"
    if not path.is_file():
        have = (
            sorted(p.name for p in analyses_dir.iterdir() if (p / "analysis.yaml").is_file())
            if analyses_dir.is_dir()
            else []
        )
        if named_in is not None:  # the grid names a bundle that is not there: the grid is what to fix
            raise RecastError(
                f"no analysis bundle {analysis_id!r} in {analyses_dir} (bundles there: {', '.join(have) or 'none'})",
                path=str(named_in),
                field=named_by,
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
            selection=inside(folder, ws["selection"], source=path, field=f"workspaces.{name}.selection")
            if "selection" in ws
            else None,
            unvalidated=ws.get("unvalidated"),
            yield_references=_yield_references(
                ws["yield_references"],
                f"workspaces.{name}.yield_references",
                {r.name for r in regions},
                folder,
                sources,
                path,
            )
            if "yield_references" in ws
            else None,
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
        known = {r.name for ws in workspaces.values() for r in ws.regions}
        yrefs = _yield_references(doc["yield_references"], "yield_references", known, folder, sources, path)
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
        sqrt_s_tev=doc.get("sqrt_s_tev"),
        official_limits=_official_limits(doc, folder, sources, path),
    )


def _official_limits(
    doc: dict[str, Any], folder: Path, sources: dict[str, Source], path: Path
) -> dict[str, OfficialLimitsRef]:
    """The bundle's ``official_limits``, checked: declared sources, consistent coordinates (nothing is read yet)."""
    out: dict[str, OfficialLimitsRef] = {}
    for model, entry in doc.get("official_limits", {}).items():
        where = f"official_limits.{model}"
        coords = {name: (int(v[0]), int(v[1])) for name, v in entry["coordinates"].items()}
        if len(set(coords.values())) != len(coords):
            raise RecastError(
                "two parameters have the same [branch, index]", path=str(path), field=f"{where}.coordinates"
            )
        fixed = {k: float(v) for k, v in entry.get("fixed", {}).items()}
        for name in fixed:
            if name not in coords:
                raise RecastError(
                    f"{name!r} is not one of the coordinates ({', '.join(coords)})",
                    path=str(path),
                    field=f"{where}.fixed",
                )
        free = [c for c in coords if c not in fixed]
        if len(free) != 2:
            raise RecastError(
                f"the official plane needs exactly two free coordinates, not {len(free)} ({', '.join(free)}): "
                "fix the others under 'fixed'",
                path=str(path),
                field=f"{where}.coordinates",
            )
        xsec = None
        if "cross_section" in entry:
            cs = entry["cross_section"]
            for key in ("values", "info"):
                if cs[key] not in sources:
                    raise RecastError(
                        f"{cs[key]!r} is not an entry of 'sources' (entries: {', '.join(sources) or 'none'})",
                        path=str(path),
                        field=f"{where}.cross_section.{key}",
                    )
            if cs["mass"] not in coords:
                raise RecastError(
                    f"{cs['mass']!r} is not one of the coordinates ({', '.join(coords)})",
                    path=str(path),
                    field=f"{where}.cross_section.mass",
                )
            xsec = TheoryXsec(
                values=sources[cs["values"]],
                info=sources[cs["info"]],
                mass=cs["mass"],
                factor=float(cs.get("factor", 1.0)),
                description=" ".join(str(cs.get("description", "")).split()),
                value_column=cs.get("value_column"),
                at={k: float(v) for k, v in cs.get("at", {}).items()},
            )
        contours: dict[str, Any] = {}
        if "contours" in entry:
            ct = entry["contours"]
            for key in ("x", "y"):
                if ct[key] not in free:
                    raise RecastError(
                        f"{ct[key]!r} is not a free coordinate ({', '.join(free)})",
                        path=str(path),
                        field=f"{where}.contours.{key}",
                    )
            contours = {"x": ct["x"], "y": ct["y"]}
            for key in ("observed", "expected"):
                if key in ct:
                    contours[key] = ct[key]
                    resolve_path(ct[key], folder, sources, source=path, field=f"{where}.contours.{key}")
        ul_text = entry.get("upper_limits")
        out[model] = OfficialLimitsRef(
            model=model,
            coordinates=coords,
            fixed=fixed,
            upper_limits=resolve_path(ul_text, folder, sources, source=path, field=f"{where}.upper_limits")
            if ul_text
            else None,
            upper_limits_text=ul_text,
            format=entry.get("format", "smodels"),
            cross_section=xsec,
            contours=contours,
            figure=entry.get("figure", ""),
            bundle=path,
            sources=sources,
        )
    return out


SOURCE_PREFIX = "source:"


def _yield_references(
    yr: dict[str, Any], where: str, regions: set[str], folder: Path, sources: dict[str, Source], path: Path
) -> YieldReferences:
    """Parse a ``yield_references`` section (the bundle's or a workspace's).

    Args:
        yr: the section as read.
        where: its key, for messages.
        regions: the region names its ``signal_regions`` must be among.
        folder: the bundle folder.
        sources: the bundle's sources.
        path: analysis.yaml (for messages).

    Returns:
        The parsed references (a pattern is resolved per point, when a grid asks).

    Raises:
        RecastError: a signal region that is not one of ``regions``, or a patch outside the bundle.
    """
    for name in yr["signal_regions"]:
        if name not in regions:
            raise RecastError(
                f"{name!r} is not a region of {'this workspace' if where.startswith('workspaces.') else 'any workspace'}"
                f" (regions: {', '.join(sorted(regions))})",
                path=str(path),
                field=f"{where}.signal_regions",
            )
    return YieldReferences(
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
            for i, p in enumerate(yr.get("points", []))
        ),
        patch_pattern=yr.get("patch_pattern"),
        resolve_pattern=_pattern_resolver(yr["patch_pattern"], folder, sources, path, f"{where}.patch_pattern")
        if "patch_pattern" in yr
        else None,
    )


def _pattern_resolver(
    pattern: str, folder: Path, sources: dict[str, Source], bundle: Path, field: str
) -> Callable[[dict[str, float]], Path | None]:
    """The patch that ``yield_references.patch_pattern`` names for a point's values, if the bundle has it.

    The pattern is a bundle path with ``{parameter}`` fields (masses written as in published file
    names, see :func:`format_value`): ``source:patch_{m_C1N2}_{m_N1}`` for one declared source per
    patch, ``source:<archive>/<member pattern>`` for the members of a published archive, or a
    path relative to the bundle folder. A point has a reference if the source is declared (for an
    archive: once fetched, if it holds the member) or the relative file exists.

    Args:
        pattern: the pattern as written.
        folder: the bundle folder.
        sources: the bundle's sources.
        bundle: analysis.yaml (for messages).
        field: the key of the pattern (for messages).

    Raises:
        RecastError: (when resolving) if the pattern uses a field that is not a parameter of the point.
    """

    def resolve(values: dict[str, float]) -> Path | None:
        try:
            text = pattern.format(**{k: format_value(v) for k, v in values.items()})
        except (KeyError, IndexError, ValueError) as exc:
            raise RecastError(
                f"patch pattern {pattern!r} uses a field that is not a grid parameter ({exc})",
                path=str(bundle),
                field=field,
            ) from None
        if text.startswith(SOURCE_PREFIX):
            name, _, member = text[len(SOURCE_PREFIX) :].partition("/")
            if name not in sources:
                return None  # no published patch for this point
            patch = resolve_path(text, folder, sources, source=bundle, field=field)
            src = sources[name]
            if member and src.directory.is_dir() and not patch.is_file():
                return None  # the fetched archive has no member for this point
            return patch
        patch = resolve_path(text, folder, sources, source=bundle, field=field)
        return patch if patch.is_file() else None

    return resolve


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
    sample: str = ""


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
    #: the simplified model (``model``), which selects the bundle's official exclusion to overlay
    model: str | None = None

    def point(self, name: str, *, source: str | None = None, field: str | None = None) -> Point:
        """Return a point by name or a clear error.

        Args:
            name: the point's name.
            source: the file that names the point (for the message), when it is not this grid's
                (a run configuration's ``upper_limits``, a reweighted point's ``from``).
            field: the key there that names it.
        """
        for p in self.points:
            if p.name == name:
                return p
        if source is not None:
            raise RecastError(
                f"grid {self.name} ({self.path}) has no point {name!r} (it has: {', '.join(p.name for p in self.points[:10])}"
                f"{', ...' if len(self.points) > 10 else ''})",
                path=source,
                field=field,
            )
        raise RecastError(f"grid {self.name} has no point {name!r}", path=str(self.path))

    def events_point(self, name: str) -> tuple[Point, EventsSpec]:
        """Return a point whose signal the front end makes from events, with the grid's events section.

        Args:
            name: the point's name.

        Returns:
            The point and how the grid's points get their events.

        Raises:
            RecastError: the grid has no such point, or the point's signal comes from a patch or yields file.
        """
        point = self.point(name)
        if self.events is None or not point.from_events:
            raise RecastError(
                f"point {point.name} takes its signal from a patch or yields file, not from events; "
                "give the grid an 'events' section to run the front end",
                path=str(self.path),
            )
        return point, self.events


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
            sample=ev.get("sample", name),
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
            yields = reweight_yields(name, p["name"])
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
            yields = select_yields(name, p["name"])
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
        model=doc.get("model"),
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


@dataclass(frozen=True)
class SharedSamples:
    """Which grid makes each shared event sample: the generation and the emulation of every point.

    Attributes:
        generators: (sample, point) -> the grid whose settings generate that point's events.
        emulators: (sample, detector key, point) -> the grid whose detector card emulates them.
        detector_keys: detector card path -> its key in result paths (the file stem).
    """

    generators: dict[tuple[str, str], str]
    emulators: dict[tuple[str, str, str], str]
    detector_keys: dict[Path, str]

    def detector_key(self, grid: Grid) -> str:
        """The detector key of a grid with events."""
        assert grid.events is not None
        return self.detector_keys[grid.events.detector]


def shared_samples(grids: Mapping[str, Grid]) -> SharedSamples:
    """Group the front-end points of a run's grids by event sample, checking that sharing grids agree.

    Grids naming one ``events.sample`` must make each common point the same way (process card, seed,
    chunks, SLHA or manifest, event count): the point is then generated once for all of them.

    Args:
        grids: the run's grids by name.

    Returns:
        The grid that generates and emulates each (sample, point).

    Raises:
        RecastError: two grids share a sample but would make one of its points differently, or two
            different detector cards have the same file name.
    """
    generators: dict[tuple[str, str], str] = {}
    emulators: dict[tuple[str, str, str], str] = {}
    keys: dict[Path, str] = {}
    for grid in grids.values():
        if grid.events is None:
            continue
        ev = grid.events
        key = ev.detector.stem
        other = next((p for p, k in keys.items() if k == key and p != ev.detector), None)
        if other is not None:
            raise RecastError(
                f"detector cards {other} and {ev.detector} have the same name {key!r}; rename one",
                path=str(grid.path),
                field="events.detector",
            )
        keys[ev.detector] = key
        for p in grid.points:
            if not p.from_events:
                continue
            owner = generators.setdefault((ev.sample, p.name), grid.name)
            if owner != grid.name:
                first = grids[owner]
                assert first.events is not None
                fp = first.point(p.name)
                mine = (ev.process, ev.seed, ev.chunks, p.slha, p.manifest, p.n_events)
                theirs = (
                    first.events.process,
                    first.events.seed,
                    first.events.chunks,
                    fp.slha,
                    fp.manifest,
                    fp.n_events,
                )
                names = ("process card", "seed", "chunks", "SLHA file", "manifest", "event count")
                diff = [n for n, a, b in zip(names, mine, theirs, strict=True) if a != b]
                if diff:
                    raise RecastError(
                        f"point {p.name} of sample {ev.sample!r} is also made by grid {owner} with another "
                        f"{', '.join(diff)}; make them equal or give this grid its own events.sample",
                        path=str(grid.path),
                        field="events.sample",
                    )
            emulators.setdefault((ev.sample, key, p.name), grid.name)
    return SharedSamples(generators=generators, emulators=emulators, detector_keys=keys)
