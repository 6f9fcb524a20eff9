from pathlib import Path

import pytest

from recastflow.bundle import load_analysis, load_grid
from recastflow.config import inside, load_validated, read_document
from recastflow.errors import RecastError


def write(tmp_path: Path, text: str, name: str = "config.yaml") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def test_unknown_key_names_key_and_allowed(tmp_path):
    p = write(tmp_path, "grids: [a]\ngirds: [b]\n")
    with pytest.raises(RecastError) as exc:
        load_validated(p, "config")
    msg = str(exc.value)
    assert str(p) in msg and "'girds'" in msg and "allowed:" in msg and "grids" in msg


def test_wrong_type_names_field(tmp_path):
    p = write(tmp_path, "grids: [a]\ncl: high\n")
    with pytest.raises(RecastError, match=r"cl: expected number, got str"):
        load_validated(p, "config")


def test_missing_required(tmp_path):
    p = write(tmp_path, "cl: 0.95\n")
    with pytest.raises(RecastError, match="missing required key: 'grids'"):
        load_validated(p, "config")


def test_yaml_syntax_error_has_line(tmp_path):
    p = write(tmp_path, "grids: [a\ncl: 0.9\n")
    with pytest.raises(RecastError, match=r"invalid YAML at line \d+ column \d+"):
        read_document(p)


def test_defaults_filled(tmp_path):
    doc = load_validated(write(tmp_path, "grids: [a]\n"), "config")
    assert doc["cl"] == 0.95 and doc["upper_limits"] == [] and doc["checks"] is True


def test_empty_file(tmp_path):
    with pytest.raises(RecastError, match="file is empty"):
        load_validated(write(tmp_path, ""), "config")


def test_path_escape_refused(tmp_path):
    with pytest.raises(RecastError, match="must not contain '..'"):
        inside(tmp_path, "../secret.json", source=tmp_path / "x.yaml", field="patch")
    with pytest.raises(RecastError, match="must be relative"):
        inside(tmp_path, "/etc/passwd", source=tmp_path / "x.yaml", field="patch")


def test_grid_point_values_must_match_parameters(project):
    grid = project / "config" / "signals" / "TOYGRID.yaml"
    grid.write_text(grid.read_text().replace("m2: 0.0", "m3: 0.0"))
    with pytest.raises(RecastError, match=r"points\[0\]\.values: .*missing \['m2'\].*unknown \['m3'\]"):
        load_grid("TOYGRID", project / "config" / "signals")


def test_analysis_schema_error(project):
    a = project / "config" / "analyses" / "TOY" / "analysis.yaml"
    a.write_text(a.read_text().replace("poi: mu_SIG", "poi: mu_SIG\n  colour: red"))
    with pytest.raises(RecastError, match=r"signal: unknown key\(s\) 'colour'"):
        load_analysis("TOY", project / "config" / "analyses")


def test_unknown_bundle_lists_available(project):
    with pytest.raises(RecastError, match=r"no analysis bundle 'NOPE' \(bundles here: TOY\)"):
        load_analysis("NOPE", project / "config" / "analyses")


def test_merge_keys_and_aliases_that_stay_small_still_load(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("base: &b {cl: 0.9, checks: true}\nrun:\n  <<: *b\n  cl: 0.8\nagain: *b\n")
    assert read_document(p) == {"base": {"cl": 0.9, "checks": True}, "run": {"cl": 0.8, "checks": True},
                                "again": {"cl": 0.9, "checks": True}}


def test_duplicate_keys_are_refused_with_their_line(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("grids: [A]\nsub:\n  x: 1\n  x: 2\n")
    with pytest.raises(RecastError, match=r"c\.yaml: invalid YAML at line 4 column 3: duplicate key 'x'"):
        read_document(p)


def test_alias_expansion_is_bounded(tmp_path):
    # nine levels of nine aliases would be 9**9 values; refused after walking only the few distinct nodes
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 9)]
    p = tmp_path / "bomb.yaml"
    p.write_text("\n".join(lines) + "\n")
    with pytest.raises(RecastError, match=r"bomb\.yaml: invalid YAML: its aliases expand to more than 100000"):
        read_document(p)
    p.write_text("a: &a [1, *a]\n")
    with pytest.raises(RecastError, match=r"line 1 contains an alias of itself \(a recursive alias\)"):
        read_document(p)
