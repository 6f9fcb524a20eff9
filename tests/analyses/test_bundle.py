import json

import pytest

from recastflow.analyses.bundle import load_analysis
from recastflow.core.errors import RecastError


def test_workspace_loads_and_checks_regions(project):
    a = load_analysis("TOY", project / "config" / "analyses")
    spec = a.workspace("main").load()
    assert [c["name"] for c in spec["channels"]] == ["SR", "CR", "VR"]


def test_sha256_mismatch_is_one_clear_line(project):
    ws = project / "config" / "analyses" / "TOY" / "workspaces" / "BkgOnly.json"
    spec = json.loads(ws.read_text())
    spec["observations"][0]["data"][0] += 1
    ws.write_text(json.dumps(spec))
    a = load_analysis("TOY", project / "config" / "analyses")
    with pytest.raises(RecastError) as exc:
        a.workspace("main").load()
    msg = str(exc.value)
    assert "\n" not in msg and "BkgOnly.json" in msg and "sha256 is" in msg and "the bundle expects" in msg


def test_region_mapped_to_missing_channel(project):
    a_yaml = project / "config" / "analyses" / "TOY" / "analysis.yaml"
    a_yaml.write_text(a_yaml.read_text().replace("channel: CR", "channel: CRX"))
    a = load_analysis("TOY", project / "config" / "analyses")
    with pytest.raises(RecastError) as exc:
        a.workspace("main").load()
    # the bundle declared it, so the bundle is named (not the published workspace)
    assert str(exc.value).startswith(f"{a_yaml}: workspaces.main.regions.CR: maps to channel 'CRX', which workspace")


def test_unknown_workspace_name(project):
    a = load_analysis("TOY", project / "config" / "analyses")
    with pytest.raises(RecastError, match=r"has no workspace 'other' \(it has: main\)"):
        a.workspace("other")


def _events_grid(project, **events):
    import yaml

    spec = {"process": "processes/p.yaml", "detector": "detectors/d.yaml", "slha": "slha/S_{m1}_{m2}.slha",
            "n_events": 100, "chunks": 2, "seed": 5}
    spec.update(events)
    path = project / "config" / "signals" / "EV.yaml"
    path.write_text(yaml.safe_dump({
        "name": "EV", "analysis": "TOY", "workspace": "main", "parameters": {"m1": {"label": "a"}, "m2": {"label": "b"}},
        "events": {k: v for k, v in spec.items() if v is not None},
        "points": [{"name": "A", "values": {"m1": 100, "m2": 0}}, {"name": "B", "values": {"m1": 200, "m2": 5.5}, "n_events": 7}],
    }))
    return path


def test_events_grid_points_get_slha_and_front_end_yields(project):
    from recastflow.analyses.bundle import load_grid

    _events_grid(project)
    grid = load_grid("EV", project / "config" / "signals")
    a, b = grid.points
    assert grid.events.chunks == 2 and grid.events.process == project / "config" / "processes" / "p.yaml"
    assert a.slha == project / "config" / "signals" / "slha" / "S_100_0.slha" and a.n_events == 100
    assert b.slha.name == "S_200_5.5.slha" and b.n_events == 7 and a.from_events
    assert str(a.yields) == "results/select/EV/A/yields.json"


@pytest.mark.parametrize("events, message", [
    ({"slha": "slha/S_{mass}.slha"}, r"events\.slha: field \{mass\} of 'slha/S_\{mass\}\.slha' is unknown; fields: \{"),
    ({"n_events": None}, r"points\[0\]: set 'events\.n_events' or the point's 'n_events'"),
    ({"detector": "../d.yaml"}, r"events\.detector: path '\.\./d\.yaml' must be relative"),
    ({"seed": 0}, r"events\.seed: 0 is less than the minimum of 1"),
])
def test_events_grid_errors_name_the_field(project, events, message):
    from recastflow.analyses.bundle import load_grid

    _events_grid(project, **events)
    with pytest.raises(RecastError, match=message):
        load_grid("EV", project / "config" / "signals")


# -- the bundle and its workspace agree, and the workspace's numbers are physical (issue 26) -------------

def _rewrite_workspace(project, edit):
    """Change the background-only workspace and update the bundle's sha256, as a careless user would."""
    import hashlib

    ws = project / "config" / "analyses" / "TOY" / "workspaces" / "BkgOnly.json"
    a_yaml = project / "config" / "analyses" / "TOY" / "analysis.yaml"
    old = hashlib.sha256(ws.read_bytes()).hexdigest()
    spec = json.loads(ws.read_text())
    edit(spec)
    ws.write_text(json.dumps(spec))
    a_yaml.write_text(a_yaml.read_text().replace(old, hashlib.sha256(ws.read_bytes()).hexdigest()))
    return load_analysis("TOY", project / "config" / "analyses")


@pytest.mark.parametrize("value, shown", [(float("nan"), "nan"), (float("inf"), "inf"), (-3.0, "-3.0")])
def test_background_workspace_with_unphysical_observations_is_refused(project, value, shown):
    a = _rewrite_workspace(project, lambda s: s["observations"][1]["data"].__setitem__(0, value))
    with pytest.raises(RecastError, match=rf"BkgOnly\.json: background-only workspace: observations of channel 'CR', "
                                          rf"bin 0: {shown} is not a count"):
        a.workspace("main").load()


def test_background_workspace_with_negative_yield_is_refused(project):
    a = _rewrite_workspace(project, lambda s: s["channels"][0]["samples"][0]["data"].__setitem__(1, -5.0))
    with pytest.raises(RecastError, match=r"channel 'SR', sample 'background', bin 1: yield is -5\.0"):
        a.workspace("main").load()


def test_non_integer_observations_are_accepted(project):
    # the bundle does not say whether a workspace's data are event counts (Asimov-like data are not)
    a = _rewrite_workspace(project, lambda s: s["observations"][1]["data"].__setitem__(0, 103.5))
    assert a.workspace("main").load()["observations"][1]["data"] == [103.5]


def test_bundle_poi_must_be_the_workspace_poi(project):
    a_yaml = project / "config" / "analyses" / "TOY" / "analysis.yaml"
    a_yaml.write_text(a_yaml.read_text().replace("poi: mu_SIG", "poi: mu_X"))
    a = load_analysis("TOY", project / "config" / "analyses")
    with pytest.raises(RecastError, match=r"analysis\.yaml: signal\.poi: 'mu_X' is not the workspace's POI: measurement "
                                          r"'meas' of .*BkgOnly\.json has POI 'mu_SIG'"):
        a.workspace("main").load()


def test_excluding_a_mapped_region_is_refused_at_load(project):
    import yaml

    a_yaml = project / "config" / "analyses" / "TOY" / "analysis.yaml"
    doc = yaml.safe_load(a_yaml.read_text())
    doc["workspaces"]["main"]["exclude_channels"] = ["VR", "CR"]
    a_yaml.write_text(yaml.safe_dump(doc))
    with pytest.raises(RecastError, match=r"analysis\.yaml: workspaces\.main\.exclude_channels: 'CR' is the channel of "
                                          r"region 'CR'; a mapped region cannot be excluded"):
        load_analysis("TOY", project / "config" / "analyses")


def test_json_workspace_with_duplicate_keys_is_refused(project):
    import hashlib

    ws = project / "config" / "analyses" / "TOY" / "workspaces" / "BkgOnly.json"
    a_yaml = project / "config" / "analyses" / "TOY" / "analysis.yaml"
    old = hashlib.sha256(ws.read_bytes()).hexdigest()
    ws.write_text(ws.read_text().replace('"version": "1.0.0"', '"version": "1.0.0", "version": "1.0.0"'))
    a_yaml.write_text(a_yaml.read_text().replace(old, hashlib.sha256(ws.read_bytes()).hexdigest()))
    with pytest.raises(RecastError, match=r"BkgOnly\.json: invalid JSON: duplicate key 'version'"):
        load_analysis("TOY", project / "config" / "analyses").workspace("main").load()
