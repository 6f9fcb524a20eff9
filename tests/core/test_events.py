"""The shared Parquet event files: header round trip, reproducible bytes, chunk merging, bad input."""

import hashlib

import awkward as ak
import pytest

from recastflow.core.errors import RecastError
from recastflow.core.events import EVENTS, RECO, merge_events, read_events, read_header, write_events


def header(**kw):
    h = {"format": EVENTS, "point": "P", "n_events": 2, "sum_weights": 2.0, "xsec_pb": 0.5,
         "xsec_source": "test", "br_factor": 0.25, "chunk": {"index": 0, "count": 1}, "weight_names": []}
    h.update(kw)
    return h


def events(offset=0.0):
    return ak.Array([{"weight": 1.0, "particles": [{"pid": 11, "px": 1.0 + offset}]},
                     {"weight": 1.0, "particles": []}])


def test_round_trip_keeps_columns_and_header(tmp_path):
    write_events(tmp_path / "e.parquet", events(), header())
    arr, h = read_events(tmp_path / "e.parquet", (EVENTS,))
    assert arr.to_list() == events().to_list()
    assert h == header() and read_header(tmp_path / "e.parquet") == header()


def test_same_input_same_bytes(tmp_path):
    for name in ("a", "b"):
        write_events(tmp_path / f"{name}.parquet", events(), header())
    digest = [hashlib.sha256((tmp_path / f"{n}.parquet").read_bytes()).hexdigest() for n in "ab"]
    assert digest[0] == digest[1]


def test_wrong_format_and_foreign_files_are_clear_errors(tmp_path):
    write_events(tmp_path / "e.parquet", events(), header())
    with pytest.raises(RecastError, match=r"e\.parquet: format: event format 'recastflow-events/1'; expected recastflow-reco/1"):
        read_events(tmp_path / "e.parquet", (RECO,))
    (tmp_path / "text.parquet").write_text("not parquet")
    with pytest.raises(RecastError, match=r"text\.parquet: not a readable Parquet event file"):
        read_header(tmp_path / "text.parquet")
    ak.to_parquet(events(), tmp_path / "plain.parquet")
    with pytest.raises(RecastError, match="without a recastflow header"):
        read_events(tmp_path / "plain.parquet")
    with pytest.raises(RecastError, match="file not found"):
        read_header(tmp_path / "missing.parquet")


def test_merge_adds_counts_and_needs_every_chunk(tmp_path):
    for i in range(3):
        write_events(tmp_path / f"c{i}.parquet", events(i), header(chunk={"index": i, "count": 3}, seed=i))
    arr, h = merge_events([tmp_path / f"c{i}.parquet" for i in (2, 0, 1)])
    assert len(arr) == 6 and h["n_events"] == 6 and h["sum_weights"] == 6.0 and h["seeds"] == [0, 1, 2]
    assert arr.particles[0, 0].px == 1.0 and arr.particles[4, 0].px == 3.0  # chunk order, not argument order
    with pytest.raises(RecastError, match=r"chunks \[0, 2\] given, expected all of 0\.\.2"):
        merge_events([tmp_path / "c0.parquet", tmp_path / "c2.parquet"])


def test_merge_of_a_subset_takes_any_distinct_chunks(tmp_path):
    for i in range(3):
        write_events(tmp_path / f"c{i}.parquet", events(i), header(chunk={"index": i, "count": 3}, seed=i))
    arr, h = merge_events([tmp_path / "c2.parquet", tmp_path / "c0.parquet"], subset=True)
    assert len(arr) == 4 and h["n_events"] == 4 and h["seeds"] == [0, 2] and h["chunk"]["merged"] == 2
    with pytest.raises(RecastError, match=r"chunks \[0, 0\] given, expected distinct chunks of 0\.\.2"):
        merge_events([tmp_path / "c0.parquet", tmp_path / "c0.parquet"], subset=True)


def test_merge_refuses_chunks_of_different_samples(tmp_path):
    write_events(tmp_path / "a.parquet", events(), header(chunk={"index": 0, "count": 2}))
    write_events(tmp_path / "b.parquet", events(), header(chunk={"index": 1, "count": 2}, xsec_pb=0.7))
    with pytest.raises(RecastError, match=r"b\.parquet: xsec_pb: chunk disagrees"):
        merge_events([tmp_path / "a.parquet", tmp_path / "b.parquet"])


def test_generator_cross_sections_are_averaged_by_events(tmp_path):
    write_events(tmp_path / "a.parquet", events(), header(chunk={"index": 0, "count": 2}, xsec_estimated=True,
                                                          xsec_pb=1.0, n_events=2))
    write_events(tmp_path / "b.parquet", events(), header(chunk={"index": 1, "count": 2}, xsec_estimated=True,
                                                          xsec_pb=2.0, n_events=6))
    _, h = merge_events([tmp_path / "a.parquet", tmp_path / "b.parquet"])
    assert h["xsec_pb"] == pytest.approx((1.0 * 2 + 2.0 * 6) / 8)
