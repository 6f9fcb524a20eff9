import json

import pytest

from recastflow.bundle import load_analysis
from recastflow.errors import RecastError


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
    with pytest.raises(RecastError, match="region 'CR' maps to channel 'CRX', which the workspace does not have"):
        a.workspace("main").load()


def test_unknown_workspace_name(project):
    a = load_analysis("TOY", project / "config" / "analyses")
    with pytest.raises(RecastError, match=r"has no workspace 'other' \(it has: main\)"):
        a.workspace("other")
