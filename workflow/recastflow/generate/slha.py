"""Reading SLHA spectrum files (via pyslha) and checking what Pythia 8 needs from them.

Pythia reads the SLHA file itself (``SLHA:file``); this module exists to catch, before a
long generation job starts, the mistakes Pythia only warns about or silently tolerates,
and to read the ``XSECTION`` blocks that carry the reference production cross-sections.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from pathlib import Path
from types import MappingProxyType

import pyslha

from recastflow.core.errors import RecastError
from recastflow.core.io import input_path

#: The MSSM sparticles Pythia takes from BLOCK MASS. Any one missing keeps Pythia's built-in
#: default mass (e.g. squarks at 500 GeV) without an error, which silently changes the
#: physics. The gravitino (1000039) is left out: it only matters for GMSB spectra.
SPARTICLES: tuple[int, ...] = (
    *range(1000001, 1000007),
    *range(2000001, 2000007),
    *range(1000011, 1000017),
    2000011,
    2000013,
    2000015,
    1000021,
    1000022,
    1000023,
    1000024,
    1000025,
    1000035,
    1000037,
)

#: QCD-order codes of the XSECTION block as written by SModelS/NLL-fast tools
#: (0 LO, 1 NLO, 2 NLO+NLL); pyslha calls 2 "NLO+LL", which is not what the tools mean.
#: 3 is the next order up, approximate NNLO+NNLL (NNLL-fast), as recastflow's spectrum cards write it.
QCD_ORDER_LABELS: dict[int, str] = {0: "LO", 1: "NLO", 2: "NLO+NLL", 3: "NNLO+NNLL"}

#: Two XSECTION energies closer than this (GeV) are the same collider energy.
SQRT_S_TOLERANCE_GEV = 0.5

#: How far the branching ratios of one DECAY table may sum from 1. Spectrum generators write
#: them rounded to a few digits; Pythia silently rescales any sum to 1, so a table that lost
#: or doubled a channel would change the physics without a word.
BR_SUM_TOLERANCE = 0.01

#: Names of the sparticles, for messages about impossible spectra.
PARTICLE_NAMES: dict[int, str] = {
    1000001: "~d_L",
    2000001: "~d_R",
    1000002: "~u_L",
    2000002: "~u_R",
    1000003: "~s_L",
    2000003: "~s_R",
    1000004: "~c_L",
    2000004: "~c_R",
    1000005: "~b_1",
    2000005: "~b_2",
    1000006: "~t_1",
    2000006: "~t_2",
    1000011: "~e_L",
    2000011: "~e_R",
    1000012: "~nu_eL",
    1000013: "~mu_L",
    2000013: "~mu_R",
    1000014: "~nu_muL",
    1000015: "~tau_1",
    2000015: "~tau_2",
    1000016: "~nu_tauL",
    1000021: "~g",
    1000022: "~chi_10",
    1000023: "~chi_20",
    1000024: "~chi_1+",
    1000025: "~chi_30",
    1000035: "~chi_40",
    1000037: "~chi_2+",
    1000039: "~G",
}


@dataclass(frozen=True)
class XsecEntry:
    """One value of an SLHA ``XSECTION`` block.

    Attributes:
        sqrt_s_gev: collision energy.
        initial: the two beam particles' PDG ids.
        final: the produced particles' PDG ids, as written in the file.
        qcd_order: QCD order code (see ``QCD_ORDER_LABELS``).
        ew_order: electroweak order code.
        kappa_f: factorisation-scale factor (0 and 1 both mean the central scale).
        kappa_r: renormalisation-scale factor.
        pdf_id: LHAPDF id of the PDF set (0 if unspecified).
        value_pb: cross-section in pb.
        code: program that computed it.
    """

    sqrt_s_gev: float
    initial: tuple[int, ...]
    final: tuple[int, ...]
    qcd_order: int
    ew_order: int
    kappa_f: float
    kappa_r: float
    pdf_id: int
    value_pb: float
    code: str


@dataclass(frozen=True)
class SLHAInfo:
    """What recastflow needs to know about an SLHA file.

    Attributes:
        path: the file, as given by the caller.
        masses: PDG id -> mass (GeV) from BLOCK MASS.
        decays: PDG ids with decay channels in a DECAY table (Pythia uses these instead of its own).
        xsections: all XSECTION values.
        mixing: the electroweakino mixing matrices present (``NMIX``, ``UMIX``, ``VMIX``), each as
            {(row, column): value}; used to tell wino-like from higgsino-like states when a cross-section
            is compared with the working group's tables.
    """

    path: str
    masses: Mapping[int, float]
    decays: tuple[int, ...]
    xsections: tuple[XsecEntry, ...]
    mixing: Mapping[str, Mapping[tuple[int, int], float]] = dataclass_field(
        default_factory=lambda: MappingProxyType({})
    )

    def mass(self, pid: int) -> float:
        """Return the mass of a particle (GeV) from BLOCK MASS.

        Args:
            pid: PDG id (the sign is ignored).
        """
        try:
            return self.masses[abs(pid)]
        except KeyError:
            raise RecastError(f"no mass for PDG id {abs(pid)}", path=self.path, field="BLOCK MASS") from None


def read_slha(path: Path) -> SLHAInfo:
    """Read an SLHA file and check that Pythia will use it as intended.

    Args:
        path: the SLHA file.

    Raises:
        RecastError: the file is missing or unreadable, has no BLOCK MODSEL (Pythia then
            switches SUSY off and fails to initialise), or lacks the mass of a sparticle.
    """
    doc = _parse(Path(path))
    if "MODSEL" not in doc.blocks:
        raise RecastError(
            "no BLOCK MODSEL: Pythia then ignores the SUSY spectrum and fails to initialise; "
            "add 'BLOCK MODSEL' with the line '1 1' (general MSSM)",
            path=str(path),
            field="BLOCK MODSEL",
        )
    if "MASS" not in doc.blocks:
        raise RecastError(
            "no BLOCK MASS: Pythia would use its default sparticle masses; add BLOCK MASS with all "
            "sparticles (decoupled ones at e.g. 1.0E+05 GeV)",
            path=str(path),
            field="BLOCK MASS",
        )
    masses = _masses(doc, path)
    missing = [pid for pid in SPARTICLES if pid not in masses]
    if missing:
        raise RecastError(
            f"BLOCK MASS lacks PDG id(s) {', '.join(map(str, missing))}: Pythia would silently keep "
            "its default masses for them (e.g. squarks at 500 GeV); give every sparticle a mass "
            "(decoupled ones at e.g. 1.0E+05 GeV)",
            path=str(path),
            field="BLOCK MASS",
        )
    _check_decays(doc, masses, path)
    return SLHAInfo(
        path=str(path),
        masses=MappingProxyType(masses),
        decays=_decaying(doc),
        xsections=_xsections(doc, path),
        mixing=_mixing(doc),
    )


#: The mixing blocks kept in SLHAInfo.mixing.
MIXING_BLOCKS: tuple[str, ...] = ("NMIX", "UMIX", "VMIX")


def _mixing(doc: pyslha.Doc) -> Mapping[str, Mapping[tuple[int, int], float]]:
    """The electroweakino mixing matrices of the file, skipping entries that are not (i, j) -> number."""
    out: dict[str, Mapping[tuple[int, int], float]] = {}
    for name in MIXING_BLOCKS:
        if name not in doc.blocks:
            continue
        matrix: dict[tuple[int, int], float] = {}
        for key, value in doc.blocks[name].items():
            # a malformed entry only makes the states unknown (no comparison), it is not an error of the file
            if isinstance(key, tuple) and len(key) == 2:
                try:
                    matrix[(int(key[0]), int(key[1]))] = float(value)
                except (TypeError, ValueError):
                    continue
        out[name] = MappingProxyType(matrix)
    return MappingProxyType(out)


def _parse(path: Path) -> pyslha.Doc:
    """Parse with pyslha, turning every failure into a RecastError naming the file."""
    if not os.path.lexists(path):
        raise RecastError("SLHA file not found", path=str(path))
    input_path(path)  # inside the allowed folders, and a regular file (a folder or a named pipe is refused)
    try:
        text = path.read_text(encoding="utf-8", errors="strict")
    except (OSError, UnicodeDecodeError) as exc:
        raise RecastError(f"cannot read the SLHA file ({exc})", path=str(path)) from None
    if not text.strip():
        raise RecastError(
            "the SLHA file is empty; an interrupted copy or a spectrum that was not written?", path=str(path)
        )
    # pyslha turns a negative or NaN branching ratio into 0, hiding the mistake: read them from the text first
    _check_branching_ratios(text, path)
    try:
        return pyslha.readSLHA(text)
    except Exception as exc:  # pyslha raises ParseError, AccessError, ValueError, IndexError on bad input
        detail = " ".join(str(exc).split())[:200] or type(exc).__name__
        raise RecastError(f"not a valid SLHA file ({detail})", path=str(path)) from None


def _check_branching_ratios(text: str, path: Path) -> None:
    """Refuse a branching ratio outside [0, 1] (or not a number) in a DECAY table, as written in the file."""
    decaying: str | None = None
    for line in text.splitlines():
        body = line.split("#", 1)[0]
        if not body.strip():
            continue
        items = body.split()
        if not body[:1].isspace():  # a new BLOCK, DECAY or XSECTION section
            decaying = items[1] if items[0].upper() == "DECAY" and len(items) > 1 else None
            continue
        if decaying is None:
            continue
        try:
            br = float(items[0])
        except ValueError:
            continue  # not a number: pyslha's own parse error names it
        if not math.isfinite(br) or not 0.0 <= br <= 1.0:
            products = ", ".join(items[2:])
            raise RecastError(
                f"the channel to {products} has branching ratio {items[0]}; a branching ratio is between 0 and 1",
                path=str(path),
                field=f"DECAY {decaying}",
            )


def _masses(doc: pyslha.Doc, path: Path) -> dict[int, float]:
    """BLOCK MASS as {PDG id: mass}, refusing entries that are not a number."""
    masses = {}
    for key, value in doc.blocks["MASS"].items():
        try:
            masses[int(key)] = float(value)
        except (TypeError, ValueError):
            raise RecastError(
                f"entry {key!r} has mass {value!r}, not a number", path=str(path), field="BLOCK MASS"
            ) from None
        # pyslha reads "nan" and "inf" as floats; Pythia would take them as masses.
        # A negative mass is legitimate (the sign of a neutralino's mass eigenvalue), so only finiteness is checked.
        if not math.isfinite(masses[int(key)]):
            raise RecastError(
                f"{particle_name(int(key))} has mass {masses[int(key)]}; give a finite mass in GeV",
                path=str(path),
                field="BLOCK MASS",
            )
    return masses


def particle_name(pid: int) -> str:
    """Return ``"<PDG id> (<name>)"`` for a sparticle, or the PDG id alone.

    Args:
        pid: PDG id (the sign is kept in the id, the name is that of the particle).
    """
    name = PARTICLE_NAMES.get(abs(pid))
    return f"{pid} ({name})" if name else str(pid)


def _check_decays(doc: pyslha.Doc, masses: dict[int, float], path: Path) -> None:
    """Refuse DECAY tables Pythia would misread or cannot honour.

    A negative or non-finite width, branching ratios outside [0, 1] or not summing to 1 (Pythia
    rescales them silently, so a lost channel changes the branching-fraction factor), and a decay
    into sparticles heavier than the parent (e.g. an LSP heavier than the chargino that decays to
    it: Pythia then fails on every event without saying why).
    """
    for pid, particle in doc.decays.items():
        pid = int(pid)
        field = f"DECAY {pid}"
        width = particle.totalwidth
        if width is not None and (not math.isfinite(float(width)) or float(width) < 0):
            raise RecastError(
                f"total width of {particle_name(pid)} is {float(width)}; give a finite width >= 0 in GeV",
                path=str(path),
                field=field,
            )
        if not particle.decays:
            continue
        total = sum(float(c.br) for c in particle.decays)
        if abs(total - 1.0) > BR_SUM_TOLERANCE:
            raise RecastError(
                f"the branching ratios of {particle_name(pid)} sum to {total:.6g}, not 1 (Pythia would "
                "silently rescale them); give every channel with its branching ratio",
                path=str(path),
                field=field,
            )
        parent = abs(masses.get(abs(pid), math.nan))
        if not math.isfinite(parent):
            continue  # a particle of the Standard Model or outside BLOCK MASS: Pythia knows its mass
        for k, channel in enumerate(particle.decays):
            if float(channel.br) <= 0.0:
                continue
            # only the sparticles among the products: SM products may be off shell (W*, Z*), sparticles not
            heavy = [int(i) for i in channel.ids if abs(int(i)) >= 1000000 and abs(int(i)) in masses]
            needed = sum(abs(masses[abs(i)]) for i in heavy)
            if heavy and needed > parent:
                listed = " + ".join(f"{particle_name(i)} at {abs(masses[abs(i)]):g} GeV" for i in heavy)
                raise RecastError(
                    f"impossible spectrum: {particle_name(pid)} at {parent:g} GeV decays (channel "
                    f"{k + 1}) to {listed}, which is heavier; fix BLOCK MASS or the DECAY table",
                    path=str(path),
                    field=field,
                )


def _decaying(doc: pyslha.Doc) -> tuple[int, ...]:
    """PDG ids with decay channels in a DECAY table.

    pyslha lists every particle of BLOCK MASS with width 0 and no channels, so only the
    channels tell a real DECAY table apart.
    """
    return tuple(sorted(int(pid) for pid, p in doc.decays.items() if p.decays))


def _xsections(doc: pyslha.Doc, path: Path) -> tuple[XsecEntry, ...]:
    """Flatten pyslha's per-process XSECTION objects into XsecEntry values.

    A cross-section that is not finite and positive, or a collision energy that is not, is refused
    naming the process: it would otherwise normalise every yield of the point.
    """
    entries = []
    for process in doc.xsections.values():
        for x in process.xsecs:
            final = " ".join(str(int(i)) for i in process.pidsfinal)
            where = f"XSECTION {float(x.sqrts):g} -> {final}"
            if not (math.isfinite(float(x.value)) and float(x.value) > 0):
                raise RecastError(
                    f"cross-section {float(x.value)} pb; a cross-section is a finite number > 0 "
                    "(remove the process if it is not produced)",
                    path=str(path),
                    field=where,
                )
            if not (math.isfinite(float(x.sqrts)) and float(x.sqrts) > 0):
                raise RecastError(
                    f"collision energy {float(x.sqrts)} GeV; give sqrt(s) in GeV, e.g. 1.30E+04",
                    path=str(path),
                    field=where,
                )
            entries.append(
                XsecEntry(
                    sqrt_s_gev=float(x.sqrts),
                    initial=tuple(int(i) for i in process.pidsinitial),
                    final=tuple(int(i) for i in process.pidsfinal),
                    qcd_order=int(x.qcd_order),
                    ew_order=int(x.ew_order),
                    kappa_f=float(x.kappa_f),
                    kappa_r=float(x.kappa_r),
                    pdf_id=int(x.pdf_id),
                    value_pb=float(x.value),
                    code=" ".join(str(c) for c in x.code if c),
                )
            )
    return tuple(entries)


def order_label(order: int) -> str:
    """Return the usual name of an XSECTION QCD-order code (e.g. ``2`` -> ``"NLO+NLL"``).

    Args:
        order: the QCD-order code.
    """
    return QCD_ORDER_LABELS.get(order, f"QCD order {order}")


def slha_xsec_pb(
    info: SLHAInfo, sqrt_s_gev: float, final_states: list[tuple[int, int]] | None, order: int | None
) -> tuple[float, str]:
    """Sum the SLHA XSECTION values of the produced pairs at one collision energy.

    Args:
        info: the read SLHA file.
        sqrt_s_gev: proton-proton collision energy.
        final_states: produced pairs to add up, each matched regardless of the order of the
            two ids (signs matter: chargino+ and chargino- are different pairs); ``None`` sums
            every process given at that energy.
        order: QCD-order code to use; ``None`` takes the highest order present for all pairs.

    Returns:
        The summed cross-section in pb and a description such as
        ``"SLHA XSECTION NLO+NLL: <file>"``.
    """
    at_energy = [
        x
        for x in info.xsections
        if abs(x.sqrt_s_gev - sqrt_s_gev) < SQRT_S_TOLERANCE_GEV and sorted(x.initial) == [2212, 2212]
    ]
    wanted = None if final_states is None else [tuple(sorted(fs)) for fs in final_states]
    chosen = at_energy if wanted is None else [x for x in at_energy if tuple(sorted(x.final)) in wanted]
    missing = [] if wanted is None else [fs for fs in wanted if not any(tuple(sorted(x.final)) == fs for x in chosen)]
    if not chosen or missing:
        what = f"the pair(s) {', '.join(map(str, missing or wanted or []))} " if wanted else "any process "
        raise RecastError(
            f"no XSECTION for {what}in pp collisions at {sqrt_s_gev:g} GeV; the file has: {_summary(info.xsections)}",
            path=info.path,
            field="XSECTION",
        )
    processes = sorted({tuple(sorted(x.final)) for x in chosen})
    use = (
        order
        if order is not None
        else min(max(x.qcd_order for x in chosen if tuple(sorted(x.final)) == fs) for fs in processes)
    )
    total = 0.0
    for fs in processes:
        total += _central(info, [x for x in chosen if tuple(sorted(x.final)) == fs and x.qcd_order == use], fs, use)
    return total, f"SLHA XSECTION {order_label(use)}: {info.path}"


def _central(info: SLHAInfo, entries: list[XsecEntry], final: tuple[int, ...], order: int) -> float:
    """Pick the one central-scale value of a process at one order."""
    if not entries:
        raise RecastError(
            f"no XSECTION at {order_label(order)} for {final}; the file has: {_summary(info.xsections)}",
            path=info.path,
            field="XSECTION",
        )
    # scale variations are extra lines with kappa != 1; 0 is the common way of writing "central"
    central = [x for x in entries if x.kappa_f in (0.0, 1.0) and x.kappa_r in (0.0, 1.0)]
    if len(central) != 1:
        raise RecastError(
            f"{len(central)} central-scale XSECTION values at {order_label(order)} for {final} "
            f"(codes/PDFs: {', '.join(f'{x.code} pdf {x.pdf_id}' for x in central) or 'none'}); "
            "keep exactly one",
            path=info.path,
            field="XSECTION",
        )
    return central[0].value_pb


def _summary(entries: tuple[XsecEntry, ...]) -> str:
    """List the XSECTION values of a file in one line, for error messages."""
    if not entries:
        return "no XSECTION blocks"
    return "; ".join(
        f"{x.final} at {x.sqrt_s_gev:g} GeV {order_label(x.qcd_order)} = {x.value_pb:g} pb" for x in entries
    )
