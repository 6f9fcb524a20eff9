from recastflow.core.seeds import chunk_sizes, derive_seed


def test_seeds_are_stable_distinct_and_in_pythia_range():
    a = derive_seed(7, "P1", "generate")
    assert a == derive_seed(7, "P1", "generate")
    others = {derive_seed(7, "P2", "generate"), derive_seed(7, "P1", "emulate", 0), derive_seed(8, "P1", "generate")}
    assert a not in others and len(others) == 3
    assert all(1 <= derive_seed(1, i) <= 900_000_000 for i in range(1000))


def test_chunk_sizes_split_evenly():
    assert chunk_sizes(10, 3) == [4, 3, 3] and sum(chunk_sizes(20001, 4)) == 20001 and chunk_sizes(5, 1) == [5]
