"""'<grid>/<point>' references: parsed once, malformed ones refused with the file and the field."""

import pytest

from recastflow.core.errors import RecastError
from recastflow.core.pointref import PointRef


def test_parse_point_and_whole_grid() -> None:
    ref = PointRef.parse("TChiWH_1Lbb/TChiWH_700_0")
    assert (ref.grid, ref.point, ref.whole_grid, str(ref)) == ("TChiWH_1Lbb", "TChiWH_700_0", False,
                                                               "TChiWH_1Lbb/TChiWH_700_0")
    assert ref.expand(["a", "b"]) == ["TChiWH_700_0"]
    whole = PointRef.parse("G/*")
    assert whole.whole_grid and whole.expand(["a", "b"]) == ["a", "b"]


@pytest.mark.parametrize("text", ["G", "G/P/Q", "/P", "G/", "G/P Q", "../G/P", 3, None])
def test_malformed_entries_are_one_line_errors(text: object) -> None:
    with pytest.raises(RecastError) as err:
        PointRef.parse(text, source="config/config.yaml", field="upper_limits")
    assert str(err.value).startswith("config/config.yaml: upper_limits: ") and "'<grid>/<point>'" in str(err.value)


def test_wildcard_refused_where_a_single_point_is_meant() -> None:
    with pytest.raises(RecastError, match=r"is not '<grid>/<point>'$"):
        PointRef.parse("G/*", wildcard=False)
