import copy
import math

import pyhf
import pytest

from recastflow.bundle import load_analysis, load_grid
from recastflow.errors import RecastError
from recastflow.patching import (
    apply_patch,
    build_patchset,
    check_yields,
    patch_from_yields,
    yields_from_patch,
)

from conftest import small_workspace, yields_doc


@pytest.fixture
def toy(project):
    analysis = load_analysis("TOY", project / "config" / "analyses")
    grid = load_grid("TOYGRID", project / "config" / "signals")
    wsref = analysis.workspace("main")
    return analysis, grid, wsref, wsref.load()


def test_patch_adds_signal_to_mapped_channels_and_drops_excluded(toy):
    analysis, _, wsref, bkg = toy
    ops = patch_from_yields(yields_doc(), bkg, wsref, analysis, "sig")
    spec = apply_patch(bkg, ops, "test")
    assert [c["name"] for c in spec["channels"]] == ["SR", "CR"]
    sr = spec["channels"][0]["samples"][-1]
    assert sr["name"] == "sig" and sr["data"] == [4.0, 6.0]
    kinds = {(m["name"], m["type"]) for m in sr["modifiers"]}
    assert {("mu_SIG", "normfactor"), ("lumi", "lumi"), ("staterror_SR", "staterror"), ("sig_theory", "normsys")} <= kinds


def test_region_without_signal_gets_no_sample(toy):
    analysis, _, wsref, bkg = toy
    doc = yields_doc()
    del doc["regions"]["CR"]
    spec = apply_patch(bkg, patch_from_yields(doc, bkg, wsref, analysis, "sig"), "test")
    assert [s["name"] for s in spec["channels"][1]["samples"]] == ["background"]


def test_yields_roundtrip_is_lossless(toy):
    analysis, _, wsref, bkg = toy
    ops = patch_from_yields(yields_doc(), bkg, wsref, analysis, "sig")
    back = yields_from_patch(ops, bkg, wsref, analysis, "test")
    assert patch_from_yields(back, bkg, wsref, analysis, back["sample"]) == ops


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda d: d["regions"]["SR"]["yields"].__setitem__(0, math.nan), r"regions\.SR\.yields: bin 0 is nan"),
        (lambda d: d["regions"]["SR"]["yields"].__setitem__(1, -1.0), r"regions\.SR\.yields: bin 1 is negative"),
        (lambda d: d["regions"]["SR"]["stat"].append(0.1), r"regions\.SR\.stat: has 3 bins, region SR has 2"),
        (lambda d: d["regions"].__setitem__("SRX", d["regions"]["SR"]), r"region\(s\) SRX are not regions"),
    ],
)
def test_bad_yields_are_clear_errors(toy, mutate, message):
    _, _, wsref, _ = toy
    doc = copy.deepcopy(yields_doc())
    mutate(doc)
    with pytest.raises(RecastError, match=message):
        check_yields(doc, wsref, "y.json")


def test_patch_for_missing_channel_is_clear(toy):
    _, _, _, bkg = toy
    ops = [{"op": "add", "path": "/channels/7/samples/0", "value": {"name": "s", "data": [1.0], "modifiers": []}}]
    with pytest.raises(RecastError) as exc:
        apply_patch(bkg, ops, "patch.x.json")
    msg = str(exc.value)
    assert msg.startswith("patch.x.json: ") and "refers to channel 7" in msg and "has 3 channels" in msg


def test_patch_with_inconsistent_modifier_is_clear(toy):
    analysis, _, wsref, bkg = toy
    ops = patch_from_yields(yields_doc(), bkg, wsref, analysis, "sig")
    ops[0]["value"]["modifiers"][1]["data"] = [0.1]  # staterror with 1 bin in a 2-bin channel
    with pytest.raises(RecastError, match="patch.json: patched workspace"):
        apply_patch(bkg, ops, "patch.json")


@pytest.mark.parametrize("mutate, where", [
    # a new signal sample that breaks the schema: only the new samples of a channel are re-validated
    (lambda ops, bkg: ops[0]["value"]["modifiers"].append({"name": "x", "type": "histosys", "data": {"hi_data": [1.0]}}),
     "new sample"),
    (lambda ops, bkg: ops[0]["value"].update(data="many"), "new sample"),
    # a patch that also edits a background sample of the same channel: that channel is validated whole
    (lambda ops, bkg: ops.append({"op": "replace", "path": "/channels/0/samples/0/data", "value": "x"}), "edited sample"),
    (lambda ops, bkg: ops.append({"op": "add", "path": "/channels/0/extra", "value": 1}), "channel key"),
])
def test_patch_breaking_the_workspace_schema_is_caught(toy, mutate, where):
    analysis, _, wsref, bkg = toy
    ops = patch_from_yields(yields_doc(), bkg, wsref, analysis, "sig")
    mutate(ops, bkg)
    with pytest.raises(RecastError, match="patch.json: patched workspace is invalid"):
        apply_patch(bkg, ops, "patch.json")


def test_patchset_is_valid_and_labelled(toy):
    analysis, grid, _, bkg = toy
    ps = build_patchset(grid, analysis, bkg)
    pyhf.schema.validate(ps, "patchset.json")
    patchset = pyhf.PatchSet(ps)
    assert patchset.labels == ["m1", "m2"]
    assert patchset[(200.0, 10.0)].name == "P1"
    ws = patchset.apply(pyhf.Workspace(bkg), "P1")
    assert "P1" in ws.samples


def test_patchset_as_grid_source(project, toy):
    """A published PatchSet (here: one we wrote) is accepted as a grid's signal source."""
    import json

    import yaml

    analysis, grid, _, bkg = toy
    sig = project / "config" / "signals"
    (sig / "published.json").write_text(json.dumps(build_patchset(grid, analysis, bkg)))
    doc = yaml.safe_load((sig / "TOYGRID.yaml").read_text())
    for p in doc["points"]:
        del p["yields"]
    doc["patchset"] = "published.json"
    doc["name"] = "FROMSET"
    (sig / "FROMSET.yaml").write_text(yaml.safe_dump(doc))
    grid2 = load_grid("FROMSET", sig)
    ps2 = build_patchset(grid2, analysis, bkg)
    assert [p["patch"] for p in ps2["patches"]] == [p["patch"] for p in build_patchset(grid, analysis, bkg)["patches"]]
