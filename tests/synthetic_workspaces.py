"""Synthetic HistFactory workspaces that use each feature pyhf 0.7.6 builds, alone and together.

Built in the tests (nothing third-party): every modifier type, several samples sharing
modifiers, multi-bin channels, and the fit trap of issue 18 (a signal whose MC statistics are
a ``shapesys`` per sample with tiny uncertainties, on which pyhf's default fit stops at its
starting point and reports success).
"""

from __future__ import annotations

from typing import Any

import numpy as np

#: pyhf 0.7.6's interpolation codes, by modifier type
NORMSYS_CODES = ("code1", "code4")
HISTOSYS_CODES = ("code0", "code2", "code4p")

FEATURES = ("normfactor", "shapefactor", "normsys", "histosys", "shapesys", "staterror", "lumi")


def _measurement(with_lumi: bool, fixed: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    parameters: list[dict[str, Any]] = []
    if with_lumi:
        parameters.append({"name": "lumi", "auxdata": [1.0], "sigmas": [0.017], "bounds": [[0.915, 1.085]],
                           "inits": [1.0]})
    parameters.extend({"name": name, "fixed": True} for name in fixed)
    return [{"name": "meas", "config": {"poi": "mu_SIG", "parameters": parameters}}]


def feature_workspace(features: tuple[str, ...], seed: int = 0, nbins: int = 3) -> dict[str, Any]:
    """A two-channel workspace (``nbins`` and 1 bins) whose backgrounds use ``features``.

    Two background samples share every modifier named after a feature (so modifiers shared between
    samples are covered), the signal carries the POI and, where asked, ``lumi`` and its own
    ``staterror``. Numbers are random but fixed by ``seed``.
    """
    rng = np.random.default_rng(seed)
    channels, observations = [], []
    for c, bins in enumerate((nbins, 1)):
        name = f"SR{c}" if c == 0 else "CR"
        samples = []
        for s in range(2):
            nominal = rng.uniform(5.0, 60.0, bins).round(3)
            mods: list[dict[str, Any]] = []
            for feature in features:
                if feature == "normfactor":
                    mods.append({"name": "mu_bkg", "type": "normfactor", "data": None})
                elif feature == "shapefactor":
                    mods.append({"name": f"shape_{name}", "type": "shapefactor", "data": None})
                elif feature == "normsys":
                    mods.append({"name": "alpha_norm", "type": "normsys",
                                 "data": {"hi": 1.0 + rng.uniform(0.02, 0.2), "lo": 1.0 - rng.uniform(0.02, 0.2)}})
                elif feature == "histosys":
                    mods.append({"name": "alpha_shape", "type": "histosys",
                                 "data": {"hi_data": list(nominal * rng.uniform(1.01, 1.2, bins)),
                                          "lo_data": list(nominal * rng.uniform(0.8, 0.99, bins))}})
                elif feature == "shapesys":
                    mods.append({"name": f"shapesys_{name}_{s}", "type": "shapesys",
                                 "data": list(nominal * rng.uniform(0.03, 0.2, bins))})
                elif feature == "staterror":
                    mods.append({"name": f"staterror_{name}", "type": "staterror",
                                 "data": list(nominal * rng.uniform(0.02, 0.1, bins))})
                elif feature == "lumi":
                    mods.append({"name": "lumi", "type": "lumi", "data": None})
            samples.append({"name": f"bkg{s}", "data": list(nominal), "modifiers": mods})
        signal = rng.uniform(1.0, 8.0, bins).round(3)
        sig_mods: list[dict[str, Any]] = [{"name": "mu_SIG", "type": "normfactor", "data": None}]
        if "lumi" in features:
            sig_mods.append({"name": "lumi", "type": "lumi", "data": None})
        if "staterror" in features:
            sig_mods.append({"name": f"staterror_{name}", "type": "staterror", "data": list(signal * 0.05)})
        samples.append({"name": "signal", "data": list(signal), "modifiers": sig_mods})
        channels.append({"name": name, "samples": samples})
        total = sum(np.asarray(s["data"]) for s in samples[:2])
        observations.append({"name": name, "data": [float(v) for v in rng.poisson(total)]})
    return {"channels": channels, "observations": observations, "measurements": _measurement("lumi" in features),
            "version": "1.0.0"}


def trap_workspace(signal_rel_unc: float = 1e-5, seed: int = 1, nch: int = 4) -> dict[str, Any]:
    """Four single-bin channels, the signal's MC statistics a ``shapesys`` per sample with tiny uncertainties.

    The layout of the published likelihood of issue 18 (single-bin channels, shared normsys, a shapesys
    per sample). With ``signal_rel_unc`` of 1e-4 to 1e-5 the signal's gamma parameters are a million times
    stiffer than the rest: pyhf's default SLSQP fit (numerical gradients, tolerance 1e-6) stops at its
    starting point and reports success, -2 log L some 16 units above the true minimum.
    """
    rng = np.random.default_rng(seed)
    channels, observations = [], []
    for c in range(nch):
        b1, b2, s = float(rng.uniform(5, 50)), float(rng.uniform(1, 10)), float(rng.uniform(2, 20))
        shared = [{"name": f"sys{k}", "type": "normsys",
                   "data": {"hi": 1 + 0.02 * rng.uniform(), "lo": 1 - 0.02 * rng.uniform()}}
                  for k in range(30) if rng.uniform() < 0.5]
        samples = [
            {"name": "bkg1", "data": [b1], "modifiers": [*shared, {"name": f"mu_bkg{c % 2}", "type": "normfactor",
                                                                  "data": None},
                                                         {"name": f"shapesys_bkg1_{c}", "type": "shapesys",
                                                          "data": [0.05 * b1]}]},
            {"name": "bkg2", "data": [b2], "modifiers": [{"name": f"shapesys_bkg2_{c}", "type": "shapesys",
                                                          "data": [0.1 * b2]},
                                                         {"name": "lumi", "type": "lumi", "data": None}]},
            {"name": "signal", "data": [s], "modifiers": [{"name": "mu_SIG", "type": "normfactor", "data": None},
                                                          {"name": f"shapesys_sig_{c}", "type": "shapesys",
                                                           "data": [signal_rel_unc * s]},
                                                          {"name": "lumi", "type": "lumi", "data": None}]},
        ]
        channels.append({"name": f"SR{c}", "samples": samples})
        observations.append({"name": f"SR{c}", "data": [float(round(b1 + b2 - 2 * c))]})
    return {"channels": channels, "observations": observations, "measurements": _measurement(True), "version": "1.0.0"}
