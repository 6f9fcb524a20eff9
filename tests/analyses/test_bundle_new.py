"""`recastflow bundle new`: bundles from published likelihood archives of every HEPData layout compute the CLs of
today's hand-written bundles, with no hand editing."""

from __future__ import annotations

import copy
import io
import json
import shutil
import tarfile
import zipfile
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import REPO, SHARED_MIRROR, small_workspace

from recastflow.analyses.fetch import json_digest
from recastflow.cli import main
from recastflow.core.errors import RecastError

LIKELIHOODS = SHARED_MIRROR / "likelihoods"


def make_project(root: Path, grids: list[str]) -> Path:
    (root / "config" / "signals").mkdir(parents=True, exist_ok=True)
    (root / "config" / "analyses").mkdir(parents=True, exist_ok=True)
    (root / "config" / "config.yaml").write_text(yaml.safe_dump({"grids": grids}))
    return root


def cls_of(project: Path, grid: str, points: list[str], monkeypatch: pytest.MonkeyPatch,
           method: str = "fast") -> dict[str, Any]:
    """CLs (observed, expected band) of points through `recastflow patch` + `recastflow limits`."""
    monkeypatch.chdir(project)
    assert main(["patch", "--grid", grid, "--output", "ps.json"]) == 0
    assert main(["limits", "--grid", grid, "--points", *points, "--patchset", "ps.json", "--output", "out.json",
                 "--method", method]) == 0
    records = json.loads((project / "out.json").read_text())["points"]
    return {r["point"]: (r["cls_obs"], r["cls_exp"]) for r in records}


def assert_same(a: dict[str, Any], b: dict[str, Any], rtol: float) -> None:
    assert a.keys() == b.keys()
    for name in a:
        (obs_a, exp_a), (obs_b, exp_b) = a[name], b[name]
        assert obs_a == pytest.approx(obs_b, rel=rtol, abs=1e-12), name
        assert exp_a == pytest.approx(exp_b, rel=rtol, abs=1e-12), name


# --------------------------------------------------------------------------- the two HEPData archives

CASES = [
    # (analysis, archive, doi, new grid, its points, today's grid, the same points there)
    ("ATLAS-SUSY-2018-31", "SUSY-2018-31_likelihoods.tar.gz", "10.17182/hepdata.89408.v3/r2",
     "ATLAS-SUSY-2018-31_RegionA", ["sbottom_1300_205_60", "sbottom_1400_950_60"],
     "sbottom_RegionA", ["sbottom_1300_205_60", "sbottom_1400_950_60"]),
    ("ATLAS-SUSY-2018-04", "SUSY-2018-04_likelihoods.tar.gz", "10.17182/hepdata.92006.v2/r2",
     "ATLAS-SUSY-2018-04_Region-combined", ["DS_200_1_Staus", "DS_400_1_Staus"],
     "staus_combined", ["DS_200_1", "DS_400_1"]),
]


@pytest.mark.parametrize("analysis, archive, doi, grid, points, old_grid, old_points", CASES)
def test_bundle_from_a_hepdata_archive_gives_todays_cls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                        capsys: pytest.CaptureFixture[str], analysis: str,
                                                        archive: str, doi: str, grid: str, points: list[str],
                                                        old_grid: str, old_points: list[str]) -> None:
    path = LIKELIHOODS / analysis / archive
    if not path.is_file():
        pytest.skip(f"needs the mirror's {path}")
    new = make_project(tmp_path / "new", [grid])
    monkeypatch.chdir(new)
    assert main(["bundle", "new", "--id", analysis, "--from-archive", str(path), "--doi", doi]) == 0
    out = capsys.readouterr().out
    assert "still to add by hand" in out and "xsec_pb" in out and "sources.likelihoods.doi" not in out
    doc = yaml.safe_load((new / "config" / "analyses" / analysis / "analysis.yaml").read_text())
    today = yaml.safe_load((REPO / "config" / "analyses" / analysis / "analysis.yaml").read_text())
    # what the files say equals what was written by hand
    assert doc["sources"]["likelihoods"]["sha256"] == today["sources"]["likelihoods"]["sha256"]
    assert doc["sources"]["likelihoods"]["doi"] == doi
    for name, ws in today["workspaces"].items():
        assert doc["workspaces"][name]["digest"] == ws["digest"]
        assert doc["workspaces"][name]["regions"] == ws["regions"]
        assert sorted(doc["workspaces"][name]["exclude_channels"]) == sorted(ws["exclude_channels"])
    for key in ("poi", "mcstat_modifier", "lumi_modifier"):
        assert doc["signal"][key] == today["signal"][key]
    mine = cls_of(new, grid, points, monkeypatch)

    old = make_project(tmp_path / "old", [old_grid])
    shutil.copytree(REPO / "config" / "analyses" / analysis, old / "config" / "analyses" / analysis)
    grid_doc = yaml.safe_load((REPO / "config" / "signals" / f"{old_grid}.yaml").read_text())
    grid_doc["points"] = [p for p in grid_doc["points"] if p["name"] in old_points]
    (old / "config" / "signals" / f"{old_grid}.yaml").write_text(yaml.safe_dump(grid_doc, sort_keys=False))
    theirs = cls_of(old, old_grid, old_points, monkeypatch)
    assert_same(mine, dict(zip(points, (theirs[p] for p in old_points))), rtol=1e-6)


# --------------------------------------------------------------------------- synthetic layouts


def signal_patch(name: str, scale: float, mcstat: str) -> list[dict[str, Any]]:
    """A published-style signal patch for conftest's small workspace (SR, CR filled; VR removed)."""
    def sample(channel: str, data: list[float]) -> dict[str, Any]:
        unc = [0.1 * d for d in data]
        stat = ({"name": f"staterror_{channel}", "type": "staterror", "data": unc} if mcstat == "staterror" else
                {"name": f"shapesys_{name}_{channel}", "type": "shapesys", "data": unc})
        return {"name": name, "data": data, "modifiers": [
            {"name": "mu_SIG", "type": "normfactor", "data": None}, {"name": "lumi", "type": "lumi", "data": None},
            stat, {"name": "sig_theory", "type": "normsys", "data": {"hi": 1.05, "lo": 0.95}}]}
    return [{"op": "add", "path": "/channels/0/samples/0", "value": sample("SR", [4.0 * scale, 6.0 * scale])},
            {"op": "add", "path": "/channels/1/samples/0", "value": sample("CR", [0.5 * scale])},
            {"op": "remove", "path": "/channels/2"}, {"op": "remove", "path": "/observations/2"}]


POINTS = {"sig_300_50": 0.5, "sig_400_100": 1.5, "sig_500_0": 3.0}


def per_point_files(mcstat: str = "staterror", prefix: str = "RegionX/") -> dict[str, bytes]:
    files = {f"{prefix}BkgOnly.json": json.dumps(small_workspace()).encode()}
    for name, scale in POINTS.items():
        files[f"{prefix}patch.{name}.json"] = json.dumps(signal_patch(name, scale, mcstat)).encode()
    files["README.md"] = b"synthetic\n"
    return files


def patchset_files() -> dict[str, bytes]:
    ws = small_workspace()
    patches = [{"metadata": {"name": name, "values": [float(v) for v in name.split("_")[1:]]},
                "patch": signal_patch(name, scale, "staterror")} for name, scale in POINTS.items()]
    ps = {"metadata": {"name": "synthetic", "description": "test", "digests": {"sha256": json_digest(ws)},
                       "labels": ["m_heavy", "m_light"], "references": {"hepdata": "ins1234567"}},
          "patches": patches, "version": "1.0.0"}
    return {"BkgOnly.json": json.dumps(ws).encode(), "patchset.json": json.dumps(ps).encode()}


def tar_bytes(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def zip_bytes(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return buf.getvalue()


def pyhf_cls(patch: list[dict[str, Any]]) -> tuple[float, list[float]]:
    """CLs at mu = 1 straight from pyhf (qtilde), the number every layout must give."""
    import jsonpatch
    import pyhf

    spec = jsonpatch.apply_patch(copy.deepcopy(small_workspace()), patch)
    ws = pyhf.Workspace(spec)
    model = ws.model()
    obs, exp = pyhf.infer.hypotest(1.0, ws.data(model), model, test_stat="qtilde", return_expected_set=True)
    return float(obs), [float(e) for e in exp]


LAYOUTS = {
    "per-point tar.gz": ("synthetic.tar.gz", lambda: tar_bytes(per_point_files()), "staterror_{channel}", "staterror"),
    "per-point zip": ("synthetic.zip", lambda: zip_bytes(per_point_files()), "staterror_{channel}", "staterror"),
    "patchset tar.gz": ("synthetic_ps.tar.gz", lambda: tar_bytes(patchset_files()), "staterror_{channel}", "staterror"),
    "nested archive": ("outer.zip", lambda: zip_bytes({"inner/likelihoods.tar.gz": tar_bytes(per_point_files()),
                                                       "README.md": b"outer\n"}), "staterror_{channel}", "staterror"),
    "shapesys per sample": ("synthetic_shapesys.tar.gz", lambda: tar_bytes(per_point_files("shapesys")),
                            "shapesys_{sample}_{channel}", "shapesys"),
}


@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_synthetic_layouts_give_pyhfs_cls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture[str], layout: str) -> None:
    monkeypatch.setenv("RECASTFLOW_CACHE", str(tmp_path / "cache"))
    file, build, template, kind = LAYOUTS[layout]
    archive = tmp_path / "downloads" / file
    archive.parent.mkdir()
    archive.write_bytes(build())
    project = make_project(tmp_path / "project", ["SYN"])
    monkeypatch.chdir(project)
    assert main(["bundle", "new", "--id", "SYN", "--from-archive", str(archive)]) == 0
    out = capsys.readouterr().out
    assert "sources.likelihoods.doi" in out  # no DOI given: the person is told to add it
    doc = yaml.safe_load((project / "config" / "analyses" / "SYN" / "analysis.yaml").read_text())
    (ws,) = doc["workspaces"].values()
    assert ws["regions"] == {"SR": {"channel": "SR", "bins": 2}, "CR": {"channel": "CR", "bins": 1}}
    assert ws["exclude_channels"] == ["VR"] and ws["digest"] == json_digest(small_workspace())
    assert doc["signal"] == {"poi": "mu_SIG", "mcstat_modifier": template, "mcstat_type": kind, "lumi_modifier": "lumi"}
    grid = yaml.safe_load((project / "config" / "signals" / "SYN.yaml").read_text())
    if layout == "patchset tar.gz":
        assert list(grid["parameters"]) == ["m_heavy", "m_light"] and grid["patchset"].endswith("/patchset.json")
    else:
        assert list(grid["parameters"]) == ["p1", "p2"]
    assert {p["name"]: list(p["values"].values()) for p in grid["points"]} == \
        {n: [float(v) for v in n.split("_")[1:]] for n in POINTS}
    if layout == "nested archive":
        inner = doc["sources"][ws["source"]]
        assert inner["within"] == {"source": "likelihoods", "member": "inner/likelihoods.tar.gz"}
        # the cache is emptied: the bundle must get the inner archive out of the outer one by itself
        shutil.rmtree(tmp_path / "cache")
        monkeypatch.setenv("RECASTFLOW_MIRROR", str(archive.parent))
    # exact: pyhf's own fits, so that the comparison with pyhf below tests the bundle, not the fast method
    got = cls_of(project, "SYN", list(POINTS), monkeypatch, method="exact")
    for point, scale in POINTS.items():
        obs, exp = pyhf_cls(signal_patch(point, scale, "shapesys" if kind == "shapesys" else "staterror"))
        assert got[point][0] == pytest.approx(obs, rel=1e-5)
        assert got[point][1] == pytest.approx(exp, rel=1e-5, abs=1e-9)


# --------------------------------------------------------------------------- bad archives


def test_bad_archives_give_one_line_naming_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from recastflow.analyses.bundle_new import new_bundle

    monkeypatch.setenv("RECASTFLOW_CACHE", str(tmp_path / "cache"))

    def attempt(name: str, data: bytes) -> str:
        path = tmp_path / name
        path.write_bytes(data)
        with pytest.raises(RecastError) as err:
            new_bundle(path, "BAD", tmp_path / "out" / "BAD", tmp_path / "signals")
        message = str(err.value)
        assert "\n" not in message and not (tmp_path / "out" / "BAD" / "analysis.yaml").exists()
        return message

    assert "unknown layout" in attempt("readme.tar.gz", tar_bytes({"README.md": b"nothing here\n"}))
    assert "unsafe member" in attempt("evil.tar.gz", tar_bytes({"../evil.json": b"{}"}))
    assert "corrupt archive" in attempt("broken.tar.gz", tar_bytes(per_point_files())[:200])
    files = patchset_files()
    ps = json.loads(files["patchset.json"])
    ps["metadata"]["digests"]["sha256"] = "0" * 64
    files["patchset.json"] = json.dumps(ps).encode()
    files["other/BkgOnly.json"] = files["BkgOnly.json"]
    message = attempt("digest.tar.gz", tar_bytes(files))
    assert "patchset.json: metadata.digests:" in message and "digest of no workspace" in message
    assert "no signal patches" in attempt("bkg_only.zip", zip_bytes({"BkgOnly.json": files["BkgOnly.json"]}))
    assert not (tmp_path / "signals").exists()
