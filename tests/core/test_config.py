import math
import re
from pathlib import Path

import pytest

from recastflow.analyses.bundle import load_analysis, load_grid
from recastflow.core.config import inside, load_validated, read_document
from recastflow.core.errors import RecastError


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


# -- numbers as physicists write them, and numbers that are not numbers -------------------------------

@pytest.mark.parametrize("text, value", [
    ("1e-3", 1e-3), ("1E+2", 100.0), ("2e10", 2e10), ("-2E-2", -0.02), ("1.5e3", 1500.0), (".5e2", 50.0),
    ("1.e3", 1000.0), ("1.0e+1", 10.0), ("3", 3), ("0.25", 0.25),
])
def test_yaml_reads_exponent_numbers_as_numbers(tmp_path, text, value):
    # PyYAML (YAML 1.1) reads 1e-3 as the string '1e-3'; YAML 1.2 and physicists read a number
    p = tmp_path / "g.yaml"
    p.write_text(f"xsec_pb: {text}\n")
    got = read_document(p)["xsec_pb"]
    assert got == value and type(got) is type(value)


@pytest.mark.parametrize("text", ["1e", "e3", "1e-", "P1e3", "1e3x", "'1e-3'"])
def test_yaml_strings_that_look_like_exponents_stay_strings(tmp_path, text):
    p = tmp_path / "g.yaml"
    p.write_text(f"name: {text}\n")
    assert isinstance(read_document(p)["name"], str)


def test_yaml_loader_stays_safe(tmp_path):
    from recastflow.core.config import _SafeLoader

    import yaml

    # SafeLoader or libyaml's CSafeLoader: only SafeConstructor's constructors, never the unsafe ones
    assert issubclass(_SafeLoader, yaml.constructor.SafeConstructor)
    assert not issubclass(_SafeLoader, (yaml.constructor.FullConstructor, yaml.constructor.UnsafeConstructor))
    p = tmp_path / "evil.yaml"
    p.write_text("x: !!python/object/apply:os.system ['true']\n")
    with pytest.raises(RecastError, match="invalid YAML"):
        read_document(p)


def test_json_duplicate_keys_are_refused_with_the_key(tmp_path):
    p = tmp_path / "y.json"
    p.write_text('{"format": "a", "regions": {"SR": {"yields": [1], "yields": [2]}}}')
    with pytest.raises(RecastError, match=r"y\.json: invalid JSON: duplicate key 'yields'"):
        read_document(p)
    p.write_text('{"a": {"b": 1}, "c": {"b": 2}}')  # the same key in two objects is fine
    assert read_document(p) == {"a": {"b": 1}, "c": {"b": 2}}


@pytest.mark.parametrize("encoding", ["utf-16", "latin-1"])
def test_config_not_in_utf8_is_one_line(tmp_path, encoding):
    p = tmp_path / "config.yaml"
    p.write_bytes("# réglage\ngrids: [A]\n".encode(encoding))
    with pytest.raises(RecastError) as exc:
        read_document(p)
    msg = str(exc.value)
    assert msg.startswith(f"{p}: not UTF-8 text") and "save the file as UTF-8" in msg and "\n" not in msg


@pytest.mark.parametrize("extra, field", [
    ("cl: .nan", "cl"), ("cl: .inf", "cl"), ("fit: {tolerance: .nan}", "fit.tolerance"),
    ("fit: {tolerance: .inf}", "fit.tolerance"), ("fit: {maxiter: .nan}", "fit.maxiter"),
    ("limits: {points_per_job: -.inf}", "limits.points_per_job"),
])
def test_non_finite_options_are_refused_naming_the_field(tmp_path, extra, field):
    # NaN compares false with every bound, so a schema's minimum alone lets it through
    p = tmp_path / "config.yaml"
    p.write_text(f"grids: [A]\n{extra}\n")
    with pytest.raises(RecastError, match=rf"config\.yaml: {re.escape(field)}: (nan|inf|-inf) is not allowed; give a finite"):
        load_validated(p, "config")


def test_infinity_is_allowed_where_the_schema_says_so(tmp_path):
    # histogram edges may run to infinity (the corpus's selection ends with .inf); NaN never
    src = Path(__file__).parent.parent / "badinput" / "base" / "config" / "analyses" / "TOY" / "selection.yaml"
    text = src.read_text()
    assert "edges: [100, 300, .inf]" in text
    p = tmp_path / "selection.yaml"
    p.write_text(text.replace("edges: [100, 300, .inf]", "edges: [-.inf, 300, .inf]"))
    load_validated(p, "selection")
    p.write_text(text.replace("edges: [100, 300, .inf]", "edges: [100, 300, .nan]"))
    with pytest.raises(RecastError, match=r"bins\.edges\[2\]: nan is not allowed; give a finite number"):
        load_validated(p, "selection")


@pytest.mark.parametrize("name, problem", [
    ("P0\n", "does not match"), ("a/b", "does not match"), ("P\t0", "does not match"), ("../x", "does not match"),
    ("P" * 101, "101 characters, at most 100"),
])
def test_point_and_grid_names_that_cannot_be_file_names_are_refused(project, name, problem):
    import yaml

    grid = project / "config" / "signals" / "TOYGRID.yaml"
    doc = yaml.safe_load(grid.read_text())
    doc["points"][0]["name"] = name
    grid.write_text(yaml.safe_dump(doc))
    with pytest.raises(RecastError, match=rf"points\[0\]\.name: .*{problem}"):
        load_grid("TOYGRID", project / "config" / "signals")
    cfg = project / "config" / "config.yaml"
    cfg.write_text(yaml.safe_dump({"grids": [name]}))
    with pytest.raises(RecastError, match=rf"grids\[0\]: .*{problem}"):
        load_validated(cfg, "config")
    doc["points"][0]["name"] = "P" * 100  # the longest allowed
    grid.write_text(yaml.safe_dump(doc))
    assert load_grid("TOYGRID", project / "config" / "signals").points[0].name == "P" * 100


@pytest.mark.parametrize("field", ["cl", "fit.tolerance", "grids"])
def test_every_float_in_a_config_number_is_finite_and_in_range_or_refused_naming_the_field(field):
    # property: NaN, infinities, huge, tiny, negative values; each is accepted only if finite and in
    # the schema's range, otherwise refused with the field's name (one line)
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from recastflow.core.config import validate

    @settings(max_examples=200, deadline=None)
    @given(st.floats(allow_nan=True, allow_infinity=True))
    def check(value):
        doc = {"grids": ["A"]}
        if field == "cl":
            doc["cl"] = value
            ok = math.isfinite(value) and 0.5 < value < 1
        elif field == "fit.tolerance":
            doc["fit"] = {"tolerance": value}
            ok = math.isfinite(value) and 0 < value <= 1
        else:
            doc["grids"] = [value]
            ok = False
        try:
            validate(doc, "config", "config.yaml")
        except RecastError as exc:
            assert not ok, f"{value!r} refused: {exc}"
            msg = str(exc)
            where = "grids[0]" if field == "grids" else field
            assert msg.startswith(f"config.yaml: {where}: ") and "\n" not in msg
        else:
            assert ok, f"{value!r} accepted in {field}"

    check()


# ----------------------------------------------------------------------------- templates (issue 26)

@pytest.mark.parametrize("template, problem", [
    ("patch_{m1.__class__}.json", "field {m1.__class__} of 'patch_{m1.__class__}.json' is not a plain {name}"),
    ("patch_{m1[0]}.json", "is not a plain {name}"),
    ("patch_{m1!r}.json", "field {m1!r} of"),
    ("patch_{m1:>10}.json", "field {m1:>10} of"),
    ("patch_{mass}.json", "field {mass} of 'patch_{mass}.json' is unknown; fields: {m1}, {m2}"),
    ("patch_{m1.json", "is not a valid template"),
    ("patch_}{m1}.json", "is not a valid template"),
    ("patch_{}.json", "field {} of"),
])
def test_grid_patterns_only_plain_parameter_fields(template: str, problem: str) -> None:
    from recastflow.core.config import validate

    doc = {"name": "G", "analysis": "A", "workspace": "w", "parameters": {"m1": {"label": "m1"}, "m2": {"label": "m2"}},
           "patch_directory": {"path": "p", "pattern": template}, "points": [{"name": "P", "values": {"m1": 1, "m2": 2}}]}
    with pytest.raises(RecastError) as err:
        validate(doc, "signals", "grid.yaml")
    assert str(err.value).startswith("grid.yaml: patch_directory.pattern: ") and problem in str(err.value)
    assert "\n" not in str(err.value)


def test_plain_patterns_and_literal_braces_pass() -> None:
    from recastflow.core.config import template_fields

    assert template_fields("p_{m1}_{m2}_{{x}}.json", ["m1", "m2"], path="g", field="f") == ["m1", "m2"]


@pytest.mark.parametrize("template, problem", [
    ("staterror_{region}", "field {region} of 'staterror_{region}' is unknown; fields: {channel}"),
    ("staterror_{channel", "is not a valid template"),
    ("staterror_{channel.upper}", "is not a plain {name}"),
])
def test_mcstat_modifier_template_only_channel(template: str, problem: str) -> None:
    from recastflow.core.config import _analysis_templates

    with pytest.raises(RecastError) as err:
        _analysis_templates({"signal": {"poi": "mu", "mcstat_modifier": template}}, "analysis.yaml")
    assert str(err.value).startswith("analysis.yaml: signal.mcstat_modifier: ") and problem in str(err.value)


def test_fit_maxiter_is_bounded() -> None:
    from recastflow.core.config import validate

    validate({"grids": ["A"], "fit": {"maxiter": 100000}}, "config", "c.yaml")
    with pytest.raises(RecastError, match=r"c\.yaml: fit\.maxiter: 10000000 is greater than the maximum of 1000000"):
        validate({"grids": ["A"], "fit": {"maxiter": 10_000_000}}, "config", "c.yaml")
