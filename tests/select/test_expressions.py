"""The selection expression language: values on hand-made events, and every refused construct."""

from __future__ import annotations

import math
from typing import Any

import awkward as ak
import numpy as np
import pytest

from recastflow.core.errors import RecastError
from recastflow.select.expressions import NUM, Kind, Scope, collection_kind, compile_expression, object_kind
from recastflow.select.selection import MET_FIELDS, RECO_COLLECTIONS, evaluate_expression


def jet(pt: float, eta: float = 0.0, phi: float = 0.0, m: float = 0.0, btag: bool = False) -> dict[str, Any]:
    return {"pt": pt, "eta": eta, "phi": phi, "m": m, "btag": btag, "flavour": 5 if btag else 0}


def lepton(pt: float, eta: float = 0.0, phi: float = 0.0, charge: int = -1) -> dict[str, Any]:
    return {"pt": pt, "eta": eta, "phi": phi, "charge": charge}


def event(jets: list | None = None, electrons: list | None = None, muons: list | None = None,
          met: tuple[float, float] = (0.0, 0.0), weight: float = 1.0) -> dict[str, Any]:
    return {"weight": weight, "jets": jets or [], "electrons": electrons or [], "muons": muons or [],
            "photons": [], "met": {"pt": met[0], "phi": met[1]}}


def events(*evs: dict[str, Any]) -> ak.Array:
    return ak.Array(list(evs))


EVENTS = events(
    event(jets=[jet(100.0, 0.0, 0.0, btag=True), jet(50.0, 0.0, math.pi / 2)],
          electrons=[lepton(50.0, 0.0, 0.0)], met=(100.0, math.pi)),
    event(jets=[jet(40.0, 1.0, 3.0)], muons=[lepton(30.0, -1.0, -3.0)], met=(20.0, 0.5)),
    event(electrons=[lepton(10.0)], met=(5.0, 0.0)),
)


def value(text: str, evs: ak.Array = EVENTS) -> np.ndarray:
    return np.asarray(evaluate_expression(text, evs))


@pytest.mark.parametrize(("text", "expected"), [
    # mT = sqrt(2 pT1 pT2 (1 - cos dphi)): back to back, 50 and 100 GeV -> sqrt(2 * 50 * 100 * 2)
    ("mt(electrons[0], met)", [math.sqrt(20000.0), math.nan, 0.0]),
    # mCT = sqrt(2 pT1 pT2 (1 + cos dphi)): 100 and 50 GeV at 90 degrees -> 100
    ("mct(jets[0], jets[1])", [100.0, math.nan, math.nan]),
    # massless, 90 degrees, eta 0: m^2 = 2 pT1 pT2 (1 - cos dphi) = 10000
    ("m(jets[0], jets[1])", [100.0, math.nan, math.nan]),
    ("pt(jets[0], jets[1])", [math.hypot(100.0, 50.0), math.nan, math.nan]),
    # dphi folds across +-pi: 3.0 and -3.0 are 2 pi - 6 apart
    ("dphi(jets[0], muons[0])", [math.nan, 2 * math.pi - 6.0, math.nan]),
    ("dr(jets[0], muons[0])", [math.nan, math.hypot(2.0, 2 * math.pi - 6.0), math.nan]),
    ("n(jets)", [2, 1, 0]),
    ("count(jets.pt > 45)", [2, 0, 0]),
    ("len(electrons)", [1, 0, 1]),
    ("sum(jets.pt)", [150.0, 40.0, 0.0]),
    ("max(jets.pt)", [100.0, 40.0, math.nan]),
    ("min(jets.pt)", [50.0, 40.0, math.nan]),
    ("min(met.pt, 50)", [50.0, 20.0, 5.0]),
    ("max(1, 2, met.pt)", [100.0, 20.0, 5.0]),
    ("jets[-1].pt", [50.0, 40.0, math.nan]),
    ("jets.pt[1]", [50.0, math.nan, math.nan]),
    ("abs(muons[0].eta) + sqrt(4) - 2 ** 2 / 4", [math.nan, 2.0, math.nan]),
    ("-met.pt", [-100.0, -20.0, -5.0]),
    ("log(exp(met.pt / 100))", [1.0, 0.2, 0.05]),
    ("cos(0) + sin(0)", [1.0, 1.0, 1.0]),
    ("2 * pi", [2 * math.pi] * 3),
    ("mindphi(jets, met)", [math.pi / 2, 2.5, math.nan]),
    ("mindphi(jets, met, 1)", [math.pi, 2.5, math.nan]),
    ("sum(dr(jets, electrons[0]) < 0.4)", [1.0, 0.0, 0.0]),
])
def test_numbers(text: str, expected: list[float]) -> None:
    np.testing.assert_allclose(value(text), expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(("text", "expected"), [
    ("10 < met.pt < 50", [False, True, False]),
    ("5 <= met.pt <= 20", [False, True, True]),
    ("met.pt > 10 and n(jets) >= 1", [True, True, False]),
    ("met.pt > 50 or n(electrons) == 1", [True, False, True]),
    ("not met.pt > 50", [False, True, True]),
    ("any(jets.btag)", [True, False, False]),
    ("all(jets.btag)", [False, False, True]),  # all() of no objects is True
    ("jets[0].btag", [True, False, False]),
    ("(met.pt > 10) + (n(jets) > 0) == 2", [True, True, False]),
    ("True", [True, True, True]),
])
def test_conditions(text: str, expected: list[bool]) -> None:
    assert value(text).tolist() == expected


def test_missing_objects_make_every_comparison_false() -> None:
    # event 0 has two jets, event 1 one, event 2 none: jets[1] is missing in events 1 and 2
    assert value("jets[1].pt > 0").tolist() == [True, False, False]
    assert value("jets[1].pt < 0").tolist() == [False, False, False]
    assert value("jets[1].pt != 7").tolist() == [True, False, False]
    assert value("jets[1].pt == jets[1].pt").tolist() == [True, False, False]
    assert value("0 < jets[1].pt < 1000").tolist() == [True, False, False]
    # 'not' turns the False of a missing object into True, as documented
    assert value("not (jets[1].pt > 0)").tolist() == [False, True, True]
    assert np.isnan(value("m(jets[0], jets[1])")[1:]).all()


def test_chained_comparison_evaluates_the_middle_once() -> None:
    assert value("40 <= max(jets.pt) < 100").tolist() == [False, True, False]


def test_per_object_values_in_where_context() -> None:
    scope = Scope(_reco_names(), {"pt": NUM, "eta": NUM})
    expr = compile_expression("pt > 30 and abs(eta) < 2.5", scope, path="s.yaml", field="objects.x.where")
    assert expr.kind.tag == "per-object condition"


def _reco_names() -> dict[str, Kind]:
    names = {n: collection_kind(n, f) for n, f in RECO_COLLECTIONS.items()}
    names["met"] = object_kind("met", MET_FIELDS)
    names["weight"] = Kind(NUM)
    names["mbb"] = Kind(NUM)
    return names


def refuse(text: str) -> str:
    with pytest.raises(RecastError) as info:
        compile_expression(text, Scope(_reco_names(), later=frozenset({"mCT"})), path="sel.yaml", field="variables.x")
    message = str(info.value)
    assert message.startswith("sel.yaml: variables.x: "), message
    return message


@pytest.mark.parametrize(("text", "says"), [
    ("__import__('os')", "not an allowed function"),
    ("().__class__", "'_'"),
    ("jets.__class__", "'_'"),
    ("abs.__doc__", "'_'"),
    ("abs.real", "functions have no attributes"),
    ("lambda: 1", "lambda is not allowed"),
    ("[x for x in jets]", "list comprehension is not allowed"),
    ("(x for x in jets)", "generator expression is not allowed"),
    ("{x: 1 for x in jets}", "dict comprehension"),
    ("open('f')", "not an allowed function"),
    ("eval('1')", "not an allowed function"),
    ("getattr(jets, 'pt')", "not an allowed function"),
    ("jets.pt.sum()", "only the listed functions can be called"),
    ("'text'", "str constants are not allowed"),
    ("None", "constants are not allowed"),
    ("(1, 2)", "tuple is not allowed"),
    ("[1]", "list is not allowed"),
    ("{1: 2}", "dict is not allowed"),
    ("jets[1:2]", "integer constant"),
    ("jets[0.5]", "integer constant"),
    ("jets[True]", "integer constant"),
    ("jets[n(jets)]", "integer constant"),
    ("jets[100000]", "between"),
    ("1 if mbb > 0 else 2", "'x if c else y' is not allowed"),
    ("(y := 1)", "':=' assignment is not allowed"),
    ("f'{mbb}'", "f-string is not allowed"),
    ("mbb & 1", "BitAnd is not allowed"),
    ("mbb // 2", "FloorDiv is not allowed"),
    ("mbb % 2", "Mod is not allowed"),
    ("~mbb", "'~' is not allowed"),
    ("mbb in jets", "In is not allowed"),
    ("mbb is mbb", "Is is not allowed"),
    ("2 ** 1000", "exponent"),
    ("9 ** 9 ** 9", "exponent"),
    ("mbb ** mbb", "exponent"),
    ("abs(x=1)", "no keyword arguments"),
    ("abs(*jets)", "not allowed"),
    ("mt(jets[0])", "wrong number of arguments to mt(): got 1"),
    ("mct(jets[0], jets[1], jets[2])", "wrong number of arguments to mct(): got 3"),
    ("m()", "wrong number of arguments to m(): got 0"),
    ("mindphi(jets, met, 0)", "at least 1"),
    ("mt(jets, met)", "must be an object"),
    ("dr(jets, electrons)", "at least one single object"),
    ("n(met)", "argument 1 of n()"),
    ("sum(jets)", "argument 1 of sum()"),
    ("jets + 1", "needs numbers, got a collection"),
    ("met > 100", "only numbers and conditions can be compared"),
    ("mbb and 1", "'and' needs conditions"),
    ("not mbb", "'not' needs a condition"),
    ("jets.pt + electrons.pt", "different collections"),
    ("mbb.pt", "has no fields"),
    ("mbb[0]", "can be indexed"),
    ("pt", "is a function"),
    ("mbb >", "syntax error at column 6"),
    ("a b", "syntax error at column 3"),
    ("x" * 3000, "at most 2000"),
    ("-" * 100 + "1", "too complex"),
    ("1" + " + 1" * 450, "too complex"),
])
def test_refused(text: str, says: str) -> None:
    assert says in refuse(text)


def test_unknown_name_suggests_the_close_one() -> None:
    message = refuse("mbbb > 100")
    assert "unknown name 'mbbb'" in message and "did you mean 'mbb'" in message


def test_unknown_field_suggests_the_close_one() -> None:
    message = refuse("jets[0].ptt > 30")
    assert "no field 'ptt'" in message and "did you mean 'pt'" in message


def test_unknown_function_suggests_the_close_one() -> None:
    assert "did you mean 'sqrt'" in refuse("sqr(mbb)")


def test_name_defined_later_says_so() -> None:
    assert "defined further down" in refuse("mCT > 180")


def test_huge_numbers_stay_finite_work() -> None:
    # no Python big-integer arithmetic ever happens: constants are floats
    np.testing.assert_array_equal(value("1e400 > 1"), [True, True, True])
    assert "exponent" in refuse("10 ** 400000")
