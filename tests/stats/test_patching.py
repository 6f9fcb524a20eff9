import copy
import math

import pyhf
import pytest

from recastflow.analyses.bundle import load_analysis, load_grid
from recastflow.core.errors import RecastError
from recastflow.stats.patching import (
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
    analysis, grid, _, bkg = toy
    sig = _patchset_grid(project, toy, lambda doc: None)
    grid2 = load_grid("FROMSET", sig)
    ps2 = build_patchset(grid2, analysis, bkg)
    assert [p["patch"] for p in ps2["patches"]] == [p["patch"] for p in build_patchset(grid, analysis, bkg)["patches"]]


# -- patches applied without deep copies, on a shared read-only workspace ---------------------------------

def _toy_workspace():
    return {
        "channels": [
            {"name": "CR", "samples": [{"name": "bkg", "data": [5.0, 6.0], "modifiers": [
                {"name": "xs", "type": "normsys", "data": {"hi": 1.1, "lo": 0.9}}]}]},
            {"name": "SR", "samples": [{"name": "bkg", "data": [1.0, 2.0], "modifiers": [
                {"name": "jes", "type": "histosys", "data": {"hi_data": [1.1, 2.2], "lo_data": [0.9, 1.8]}}]}]},
        ],
        "observations": [{"name": "CR", "data": [5.0, 6.0]}, {"name": "SR", "data": [1.0, 2.0]}],
        "measurements": [{"name": "m", "config": {"poi": "mu", "parameters": []}}],
        "version": "1.0.0",
    }


SIGNAL = {"name": "sig", "data": [0.5, 0.5], "modifiers": [{"name": "mu", "type": "normfactor", "data": None}]}

EVERY_KIND_OF_OPERATION = [
    [{"op": "add", "path": "/channels/1/samples/1", "value": SIGNAL}],
    [{"op": "add", "path": "/channels/1/samples/-", "value": SIGNAL}, {"op": "remove", "path": "/channels/0"},
     {"op": "remove", "path": "/observations/0"}],
    # inside a list of numbers, and after a removal shifted the indices
    [{"op": "remove", "path": "/channels/0"}, {"op": "replace", "path": "/channels/0/samples/0/data/1", "value": 9.0}],
    [{"op": "add", "path": "/channels/0/samples/0/modifiers/0/data/hi", "value": 1.3}],
    [{"op": "copy", "from": "/channels/1/samples/0", "path": "/channels/1/samples/-"},
     {"op": "replace", "path": "/channels/1/samples/1/name", "value": "copy"},
     {"op": "replace", "path": "/channels/1/samples/1/modifiers/0/data/hi_data/0", "value": 7.0}],
    [{"op": "move", "from": "/channels/0/samples/0/data", "path": "/channels/1/samples/0/moved"}],
    [{"op": "test", "path": "/version", "value": "1.0.0"}, {"op": "replace", "path": "", "value": {"channels": []}}],
]


@pytest.mark.parametrize("shared", [False, True], ids=["plain", "shared"])
@pytest.mark.parametrize("ops", EVERY_KIND_OF_OPERATION)
def test_patches_apply_as_jsonpatch_does_and_never_change_the_workspace(ops, shared):
    import jsonpatch

    from recastflow.stats.patching import _apply_sharing, shared_copy

    bkg = shared_copy(_toy_workspace()) if shared else _toy_workspace()
    snapshot = copy.deepcopy(_toy_workspace())
    assert _apply_sharing(bkg, copy.deepcopy(ops)) == jsonpatch.apply_patch(_toy_workspace(), copy.deepcopy(ops))
    assert bkg == snapshot


def test_failing_patch_leaves_the_shared_workspace_as_it_was():
    import jsonpatch

    from recastflow.stats.patching import _apply_sharing, shared_copy

    bkg = shared_copy(_toy_workspace())
    ops = [{"op": "replace", "path": "/channels/1/samples/0/data/0", "value": 3.0},
           {"op": "remove", "path": "/channels/5"}]
    with pytest.raises(jsonpatch.JsonPatchException):
        _apply_sharing(bkg, ops)
    assert bkg == _toy_workspace()


def test_shared_copy_is_read_only_and_deep_copies_share_it():
    from recastflow.stats.patching import shared_copy

    doc = shared_copy(_toy_workspace())
    assert doc == _toy_workspace()
    data = doc["channels"][0]["samples"][0]["data"]
    for mutate in (lambda: data.append(1.0), lambda: data.__setitem__(0, 1.0), lambda: data.sort(),
                   lambda: doc.update(x=1), lambda: doc.__setitem__("x", 1), lambda: doc.pop("version"),
                   lambda: doc["channels"][0].setdefault("x", 1), lambda: doc["channels"].clear()):
        with pytest.raises(TypeError, match="read-only"):
            mutate()
    assert copy.deepcopy(doc) is doc and copy.deepcopy(data) is data
    assert doc == _toy_workspace()


def test_published_patches_on_the_shared_workspace_give_pyhfs_models(tmp_path):
    # every published 1Lbb point: the same specification as jsonpatch gives, the workspace untouched
    import json

    import jsonpatch

    from recastflow.core.config import read_document
    from recastflow.stats.patching import apply_patch, build_model_and_data, shared_copy

    from conftest import published_file

    # ATLAS's published 1Lbb workspace and patches, through the fetch layer (cache, mirror)
    raw = read_document(published_file("ATLAS-SUSY-2019-08", "source:bkgonly"))
    before = json.dumps(raw, sort_keys=True)
    bkg = shared_copy(raw)
    for path in [published_file("ATLAS-SUSY-2019-08", f"source:patch_{p}") for p in ("300_150", "500_0", "700_0")]:
        ops = read_document(path)
        spec = apply_patch(bkg, ops, path)
        assert spec == jsonpatch.apply_patch(raw, ops)
        model, data = build_model_and_data(spec, path)
        ws = pyhf.Workspace(jsonpatch.apply_patch(raw, ops))
        reference = ws.model()
        assert model.config.par_names == reference.config.par_names
        assert data == ws.data(reference)
    assert json.dumps(bkg, sort_keys=True) == before


# -- a patched workspace is checked as a likelihood (issue 26) ------------------------------------------

def _histosys(hi, lo):
    return {"name": "sig_jes", "type": "histosys", "data": {"hi_data": hi, "lo_data": lo}}


BROKEN_SIGNALS = [
    (lambda v: v.update(data=[math.nan, 3.0]), r"channel 'SR', sample 'sig', bin 0: yield is nan"),
    (lambda v: v.update(data=[-2.0, 3.0]), r"channel 'SR', sample 'sig', bin 0: yield is -2\.0"),
    (lambda v: v.update(data=[1.0, math.inf]), r"channel 'SR', sample 'sig', bin 1: yield is inf"),
    (lambda v: v.update(data=[1.0, 2.0, 3.0]), r"sample 'sig' has 3 bins, the channel's observations have 2"),
    (lambda v: v.update(name="background"), r"two samples named 'background' in channel 'SR'"),
    (lambda v: v["modifiers"][1].update(data=[0.1, -0.1]), r"modifier 'staterror_SR' \(staterror\), bin 1 is -0\.1"),
    (lambda v: v["modifiers"][1].update(data=[0.1]), r"modifier 'staterror_SR' \(staterror\): has 1 bins"),
    (lambda v: v["modifiers"][2]["data"].update(hi=math.nan), r"modifier 'sig_theory' \(normsys\): hi is nan"),
    (lambda v: v["modifiers"][2]["data"].update(lo=-0.5), r"modifier 'sig_theory' \(normsys\): lo is -0\.5"),
    (lambda v: v["modifiers"].append(_histosys([1.0, 2.0], [math.nan, 1.0])), r"'sig_jes' \(histosys\), lo_data bin 0 is nan"),
    (lambda v: v["modifiers"].append(_histosys([1.0, -2.0], [1.0, 1.0])), r"'sig_jes' \(histosys\), hi_data bin 1 is -2\.0"),
    (lambda v: v["modifiers"].append(_histosys([1.0], [1.0, 1.0])), r"'sig_jes' \(histosys\): hi_data has 1 bins"),
    (lambda v: v["modifiers"].append({"name": "sig_mc", "type": "shapesys", "data": [math.inf, 0.1]}),
     r"'sig_mc' \(shapesys\), bin 0 is inf"),
]


@pytest.mark.parametrize("shared", [False, True], ids=["plain", "shared"])
@pytest.mark.parametrize("mutate, message", BROKEN_SIGNALS)
def test_patched_workspace_that_is_no_likelihood_is_refused(toy, shared, mutate, message):
    from recastflow.stats.patching import shared_copy

    analysis, _, wsref, bkg = toy
    ops = patch_from_yields(yields_doc(), bkg, wsref, analysis, "sig")
    mutate(ops[0]["value"])
    base = shared_copy(bkg) if shared else bkg
    # a first, sound point: on a shared workspace it makes the background's parts trusted
    apply_patch(base, patch_from_yields(yields_doc(), bkg, wsref, analysis, "sig"), "ok.json")
    with pytest.raises(RecastError, match=rf"^p\.json: patched workspace: .*{message}"):
        apply_patch(base, ops, "p.json", build_model=False)


@pytest.mark.parametrize("shared", [False, True], ids=["plain", "shared"])
def test_patch_that_breaks_the_observations_is_refused(toy, shared):
    from recastflow.stats.patching import shared_copy

    analysis, _, wsref, bkg = toy
    base = shared_copy(bkg) if shared else bkg
    ops = patch_from_yields(yields_doc(), bkg, wsref, analysis, "sig")
    apply_patch(base, ops, "ok.json")
    bad = ops + [{"op": "replace", "path": "/observations/0/data/1", "value": math.nan}]
    with pytest.raises(RecastError, match=r"observations of channel 'SR', bin 1: nan is not a count"):
        apply_patch(base, bad, "p.json")
    bad = ops + [{"op": "remove", "path": "/observations/1"}]
    with pytest.raises(RecastError, match=r"channel 'CR' has no observations"):
        apply_patch(base, bad, "p.json")


def test_a_patch_file_with_bare_nan_is_refused_naming_it(toy, tmp_path):
    # Python's json (and so pyhf) reads a bare NaN in a published patch as a float nan
    from recastflow.core.config import read_document

    analysis, _, wsref, bkg = toy
    path = tmp_path / "patch.json"
    path.write_text('[{"op": "add", "path": "/channels/0/samples/1", "value": {"name": "signal", "data": [NaN, 3], '
                    '"modifiers": [{"name": "mu_SIG", "type": "normfactor", "data": null}]}}]')
    with pytest.raises(RecastError, match=rf"^{path}: patched workspace: channel 'SR', sample 'signal', bin 0: yield is nan"):
        apply_patch(bkg, read_document(path), path, analysis=analysis, wsref=wsref)


def test_a_broken_shared_background_is_named_as_such():
    from recastflow.stats.patching import shared_copy

    raw = _toy_workspace()
    raw["channels"][0]["samples"][0]["data"][1] = -6.0
    with pytest.raises(RecastError, match=r"background-only workspace: channel 'CR', sample 'bkg', bin 1: yield is -6\.0"):
        apply_patch(shared_copy(raw), [{"op": "add", "path": "/channels/1/samples/1", "value": SIGNAL}], "p.json")


def test_patched_workspace_is_checked_against_the_bundle(toy):
    analysis, _, wsref, bkg = toy
    ops = patch_from_yields(yields_doc(), bkg, wsref, analysis, "sig")
    apply_patch(bkg, ops, "p.json", analysis=analysis, wsref=wsref)
    poi = ops + [{"op": "replace", "path": "/measurements/0/config/poi", "value": "mu_bkg"}]
    apply_patch(bkg, poi, "p.json")  # another normfactor: a likelihood, but not the bundle's
    with pytest.raises(RecastError, match=r"measurement 'meas' has POI 'mu_bkg', the bundle names 'mu_SIG' \(signal\.poi"):
        apply_patch(bkg, poi, "p.json", analysis=analysis, wsref=wsref)
    gone = ops + [{"op": "remove", "path": "/channels/0"}]
    with pytest.raises(RecastError, match=r"channel 'SR' of region 'SR' is no longer in the workspace"):
        apply_patch(bkg, gone, "p.json", analysis=analysis, wsref=wsref)


def test_poi_that_no_sample_carries_is_refused(toy):
    analysis, _, wsref, bkg = toy
    ops = patch_from_yields(yields_doc(), bkg, wsref, analysis, "sig")
    ops.append({"op": "replace", "path": "/measurements/0/config/poi", "value": "mu_nothing"})
    with pytest.raises(RecastError, match=r"POI 'mu_nothing', but no sample has a normfactor of that name"):
        apply_patch(bkg, ops, "p.json", build_model=False)


def test_patch_stage_refuses_a_yields_systematic_that_is_nan(project, toy):
    import json

    analysis, grid, _, bkg = toy
    doc = yields_doc()
    doc["regions"]["SR"]["systematics"][0]["data"]["lo"] = math.nan
    path = project / "config" / "signals" / "yields" / "P1.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(RecastError, match=rf"^{path}: patched workspace: .*'sig_theory' \(normsys\): lo is nan"):
        build_patchset(grid, analysis, bkg)


# -- PatchSet points matched by their values, labels checked at load (issue 18) --------------------------

def _patchset_grid(project, toy, edit):
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
    edit(doc)
    (sig / "FROMSET.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    return sig


def test_patchset_point_with_other_values_than_its_namesake_is_refused(project, toy):
    sig = _patchset_grid(project, toy, lambda d: d["points"][1]["values"].update(m2=11.0))
    with pytest.raises(RecastError) as exc:
        load_grid("FROMSET", sig)
    msg = str(exc.value)
    assert msg.startswith(f"{sig / 'FROMSET.yaml'}: points[1].values: point 'P1' has m1=200, m2=11")
    assert "the patch of that name in" in msg and "is for m1=200, m2=10" in msg


def test_patchset_lookup_matches_values_not_names(project, toy):
    from recastflow.analyses.bundle import Point
    from recastflow.stats.patching import _patch_from_patchset

    sig = _patchset_grid(project, toy, lambda d: None)
    grid = load_grid("FROMSET", sig)
    by_values = _patch_from_patchset(grid.patchset, Point("renamed", {"m1": 200.0, "m2": 10.0}), ["m1", "m2"], grid.path)
    assert by_values == _patch_from_patchset(grid.patchset, grid.point("P1"), ["m1", "m2"], grid.path)
    # the grid changed after load (or built in code): the patch stage refuses too, naming both files
    with pytest.raises(RecastError, match=r"has a patch named 'P1' for m1=200, m2=10, but point 'P1' of .*FROMSET\.yaml "
                                          r"has m1=200, m2=11"):
        _patch_from_patchset(grid.patchset, Point("P1", {"m1": 200.0, "m2": 11.0}), ["m1", "m2"], grid.path)
    with pytest.raises(RecastError, match=r"has no patch with the values of point 'PX' of .*\(m1=5, m2=6\)"):
        _patch_from_patchset(grid.patchset, Point("PX", {"m1": 5.0, "m2": 6.0}), ["m1", "m2"], grid.path)


def test_patchset_labels_that_differ_from_the_grid_parameters_fail_at_load(project, toy):
    def rename(doc):
        doc["parameters"] = {"mass1": doc["parameters"]["m1"], "m2": doc["parameters"]["m2"]}
        doc["plot"]["x"] = "mass1"
        for p in doc["points"]:
            p["values"]["mass1"] = p["values"].pop("m1")

    sig = _patchset_grid(project, toy, rename)
    with pytest.raises(RecastError, match=r"FROMSET\.yaml: parameters: the grid's parameters \['mass1', 'm2'\] differ "
                                          r"from the labels \['m1', 'm2'\]"):
        load_grid("FROMSET", sig)


@pytest.mark.parametrize("content", ["[]", "null", '{"metadata": {}}'])
def test_patchset_that_is_not_one_is_a_clear_error(project, toy, content):
    sig = _patchset_grid(project, toy, lambda d: None)
    (sig / "published.json").write_text(content)
    with pytest.raises(RecastError, match=r"published\.json: not a pyhf PatchSet"):
        load_grid("FROMSET", sig)


@pytest.fixture
def shapesys_toy(project):
    """The TOY bundle with the signal's MC statistics as one shapesys per sample (issue 18's convention)."""
    import yaml

    path = project / "config" / "analyses" / "TOY" / "analysis.yaml"
    doc = yaml.safe_load(path.read_text())
    doc["signal"].update({"mcstat_type": "shapesys", "mcstat_modifier": "shapesys_{sample}_{channel}"})
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    analysis = load_analysis("TOY", project / "config" / "analyses")
    wsref = analysis.workspace("main")
    return analysis, wsref, wsref.load()


def test_signal_mcstat_as_a_shapesys_per_sample(shapesys_toy):
    analysis, wsref, bkg = shapesys_toy
    ops = patch_from_yields(yields_doc(), bkg, wsref, analysis, "sig")
    spec = apply_patch(bkg, ops, "test", analysis=analysis, wsref=wsref)
    sr = spec["channels"][0]["samples"][-1]
    mcstat = [m for m in sr["modifiers"] if m["type"] in ("staterror", "shapesys")]
    assert mcstat == [{"name": "shapesys_sig_SR", "type": "shapesys", "data": [0.4, 0.5]}]
    # extract-yields reads the same convention back: the round trip gives the same patch
    back = yields_from_patch(ops, bkg, wsref, analysis, "test")
    assert back["regions"]["SR"]["stat"] == [0.4, 0.5]
    assert patch_from_yields(back, bkg, wsref, analysis, back["sample"]) == ops
    # and the likelihood builds with a gamma per bin of the signal alone
    model = pyhf.Workspace(spec).model()
    assert model.config.param_set("shapesys_sig_SR").n_parameters == 2


def test_a_patch_with_another_mcstat_convention_names_what_it_has(shapesys_toy):
    import dataclasses

    analysis, wsref, bkg = shapesys_toy
    staterror_analysis = dataclasses.replace(analysis, mcstat_type="staterror", mcstat_modifier="staterror_{channel}")
    ops = patch_from_yields(yields_doc(), bkg, wsref, staterror_analysis, "sig")
    with pytest.raises(RecastError, match=r"no shapesys modifier named 'shapesys_sig_SR' \(it has: staterror "
                                          r"'staterror_SR'\); set signal\.mcstat_type") as err:
        yields_from_patch(ops, bkg, wsref, analysis, "patch.json")
    assert err.value.field == "signal.mcstat_modifier"


def test_patch_stage_builds_one_model_per_structure_and_still_refuses_a_point_that_does_not_build(project):
    import json

    # P2's signal reuses the name of the background's normfactor for a shapesys: pyhf cannot build that model
    path = project / "config" / "signals" / "yields" / "P2.json"
    doc = json.loads(path.read_text())
    doc["regions"]["SR"]["systematics"].append({"name": "mu_bkg", "type": "shapesys", "data": [0.1, 0.1]})
    path.write_text(json.dumps(doc))
    analysis = load_analysis("TOY", project / "config" / "analyses")
    grid = load_grid("TOYGRID", project / "config" / "signals")
    with pytest.raises(RecastError, match="does not build a model") as err:
        build_patchset(grid, analysis, analysis.workspace("main").load())
    assert err.value.path.endswith("P2.json")


def test_points_sharing_a_structure_share_its_signature():
    from recastflow.stats.patching import _structure

    one = [{"op": "add", "path": "/channels/0/samples/1",
            "value": {"name": "P0", "data": [1.0, 2.0], "modifiers": [{"name": "mu", "type": "normfactor", "data": None}]}}]
    other = copy.deepcopy(one)
    other[0]["value"].update(name="P1", data=[3.5, 0.25])
    assert _structure(one) == _structure(other)
    longer = copy.deepcopy(one)
    longer[0]["value"]["data"].append(1.0)
    assert _structure(longer) != _structure(one)
