"""TStauStau: committed spectra are the card's output, and the truth record's hadronic taus (prongs, charge)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from recastflow.generate.truth import Flat, visible_taus
from recastflow.generate.slha import read_slha, slha_xsec_pb
from recastflow.generate.spectrum import load_spectrum_card, spectrum_text

REPO = Path(__file__).resolve().parents[2]
CARD = REPO / "config" / "spectra" / "TStauStau.yaml"
POINTS = (
    "120_1",
    "160_1",
    "200_1",
    "240_1",
    "280_1",
    "300_1",
    "320_1",
    "360_1",
    "400_1",
    "440_1",
    "160_80",
    "200_80",
    "240_80",
    "280_80",
    "400_80",
    "280_120",
    "320_120",
    "360_120",
)


@pytest.mark.parametrize("point", POINTS)
def test_committed_stau_spectra_are_the_cards_output(point: str) -> None:
    committed = REPO / "config" / "signals" / "slha" / "TStauStau" / f"TStauStau_{point}.slha"
    m, n = (float(x) for x in point.split("_"))
    assert committed.read_text() == spectrum_text(load_spectrum_card(CARD), {"m_stau": m, "m_N1": n})
    info = read_slha(committed)
    assert info.mass(1000015) == info.mass(2000015) == m and info.mass(1000022) == n


def test_stau_cross_section_is_the_working_group_sum() -> None:
    # LHC SUSY XS WG slepton tables (PDF4LHC15) at 200 GeV: stau_L pair 0.02194 pb, stau_R pair 0.008372 pb,
    # the same numbers SModelS writes into TStauStau_200_1_200_1.slha (config/signals/staus_combined.yaml)
    info = read_slha(REPO / "config" / "signals" / "slha" / "TStauStau" / "TStauStau_200_1.slha")
    value, _ = slha_xsec_pb(info, 13000.0, [(1000015, -1000015), (2000015, -2000015)], None)
    assert value == pytest.approx(0.02194 + 0.008372, rel=1e-9)


def flat_event(rows: list[tuple[int, int, int, tuple[float, float, float, float]]]) -> Flat:
    """One event from (pid, status, mother index or -1, (px, py, pz, e)) rows."""
    n = len(rows)
    pid = np.array([r[0] for r in rows], dtype=np.int32)
    status = np.array([r[1] for r in rows], dtype=np.int32)
    mother = np.array([r[2] for r in rows], dtype=np.int64)
    p = np.array([r[3] for r in rows], dtype=np.float64)
    return Flat(
        np.array([n]),
        np.array([0]),
        np.zeros(n, dtype=np.int64),
        pid,
        status,
        mother,
        p[:, 0],
        p[:, 1],
        p[:, 2],
        p[:, 3],
        np.zeros(n),
    )


def test_visible_taus_count_prongs_and_keep_charge_and_visible_mass() -> None:
    rows = [
        # 0: tau- -> rho- nu, rho- -> pi- pi0, pi0 -> gamma gamma: one prong
        (15, -91, -1, (50.0, 0.0, 0.0, 50.1)),
        (16, 1, 0, (10.0, 0.0, 0.0, 10.0)),
        (-213, -91, 0, (40.0, 0.0, 0.0, 40.1)),
        (-211, 1, 2, (20.0, 0.0, 0.0, 20.0)),
        (111, -91, 2, (20.0, 0.0, 0.0, 20.1)),
        (22, 1, 4, (10.0, 1.0, 0.0, 10.05)),
        (22, 1, 4, (10.0, -1.0, 0.0, 10.05)),
        # 7: tau+ -> a1+ nubar, a1+ -> pi+ pi+ pi-: three prongs
        (-15, -91, -1, (-60.0, 0.0, 0.0, 60.1)),
        (-16, 1, 7, (-15.0, 0.0, 0.0, 15.0)),
        (20213, -91, 7, (-45.0, 0.0, 0.0, 45.2)),
        (211, 1, 9, (-15.0, 0.5, 0.0, 15.01)),
        (211, 1, 9, (-15.0, -0.5, 0.0, 15.01)),
        (-211, 1, 9, (-15.0, 0.0, 0.5, 15.01)),
        # 13: tau- -> mu- nu nu: leptonic, not a hadronic tau
        (15, -91, -1, (0.0, 30.0, 0.0, 30.1)),
        (13, 1, 13, (0.0, 20.0, 0.0, 20.0)),
        (-14, 1, 13, (0.0, 5.0, 0.0, 5.0)),
        (16, 1, 13, (0.0, 5.0, 0.0, 5.0)),
        # 17: a pion from elsewhere (mother chain without a tau) is nobody's prong
        (211, 1, -1, (0.0, 0.0, 10.0, 10.001)),
    ]
    taus = visible_taus(flat_event(rows))[0]
    assert len(taus) == 2
    one, three = taus[0], taus[1]
    assert (one.prongs, one.charge) == (1, -1)
    assert (three.prongs, three.charge) == (3, 1)
    # visible = tau minus its neutrino: (40, 0, 0, 40.1) and (-45, 0, 0, 45.1)
    assert one.pt == pytest.approx(40.0) and three.pt == pytest.approx(45.0)
    assert one.m == pytest.approx(np.sqrt(40.1**2 - 40.0**2))
    assert three.m == pytest.approx(np.sqrt(45.1**2 - 45.0**2))
