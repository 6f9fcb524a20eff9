"""The compiled schema check gives pyhf's verdict: on published documents and on broken copies of them."""

import copy
import json
import random
from collections import Counter
from pathlib import Path

import numpy as np
import pyhf
import pytest

from recastflow.stats import pyhfschema
from recastflow.stats.patching import shared_copy

from conftest import published_file, published_patchset

REPO = Path(__file__).resolve().parents[2]
# published workspaces, fetched (cache, then the mirror) when a test needs them
WORKSPACES = {
    "RegionA": ("ATLAS-SUSY-2018-31", "source:likelihoods/RegionA/BkgOnly.json"),
    "1Lbb": ("ATLAS-SUSY-2019-08", "source:bkgonly"),
}


def pyhf_accepts(doc, schema_name="workspace.json") -> bool:
    try:
        pyhf.schema.validate(doc, schema_name)
    except pyhf.exceptions.InvalidSpecification:
        return False
    return True


def ours_accepts(doc, schema_name="workspace.json") -> bool:
    try:
        pyhfschema.validate(doc, schema_name)
    except pyhf.exceptions.InvalidSpecification:
        return False
    return True


def fast_accepts(doc, schema_name="workspace.json") -> bool:
    """The compiled validator alone (no fallback to pyhf)."""
    return pyhfschema._validator(schema_name).is_valid(doc)


@pytest.fixture(scope="module")
def small():
    """A published workspace cut to one channel of three samples with two modifiers of each kind."""
    ws = json.loads(published_file(*WORKSPACES["1Lbb"]).read_text())
    channel = ws["channels"][0]
    samples = []
    for sample in channel["samples"][:3]:
        kinds: Counter = Counter()
        mods = []
        for mod in sample["modifiers"]:
            kinds[mod["type"]] += 1
            if kinds[mod["type"]] <= 2:
                mods.append(mod)
        samples.append(dict(sample, modifiers=mods))
    return dict(
        ws,
        channels=[dict(channel, samples=samples)],
        observations=[o for o in ws["observations"] if o["name"] == channel["name"]],
    )


@pytest.mark.parametrize("name", sorted(WORKSPACES))
def test_published_workspaces_are_valid(name):
    ws = json.loads(published_file(*WORKSPACES[name]).read_text())
    assert fast_accepts(ws)
    assert fast_accepts(shared_copy(ws))  # the read-only copies a grid shares
    pyhfschema.validate(ws, "workspace.json")


def test_published_patchset_is_valid():
    # the RegionA patches of the HEPData archive, collected into a PatchSet as pyhf publishes them
    doc = published_patchset("ATLAS-SUSY-2018-31", "RegionA", ["m_sbottom", "m_neutralino2", "m_neutralino1"], "RegionA")
    assert fast_accepts(doc, "patchset.json")


def _nodes(doc, path=()):
    yield path, doc
    if isinstance(doc, dict):
        for key, value in doc.items():
            yield from _nodes(value, (*path, key))
    elif isinstance(doc, list):
        for i, value in enumerate(doc):
            yield from _nodes(value, (*path, i))


def _mutate(doc, rng: random.Random):
    """A copy of ``doc`` with one random change: a value replaced, a key removed or added, a list emptied."""
    doc = copy.deepcopy(doc)
    nodes = [(p, n) for p, n in _nodes(doc) if p]
    path, node = rng.choice(nodes)
    parent = doc
    for key in path[:-1]:
        parent = parent[key]
    kind = rng.choice(["replace", "remove", "add", "empty"])
    if kind == "replace":
        parent[path[-1]] = rng.choice(["text", -1.0, 0, True, None, [], {}, [1.0, "x"], {"name": 1}])
    elif kind == "remove":
        del parent[path[-1]]
    elif kind == "add" and isinstance(node, dict):
        node[rng.choice(["extra", "name", "type", "data", "hi", "lo"])] = rng.choice(["x", 1.0, [1.0]])
    elif isinstance(node, (list, dict)):
        node.clear()
    else:
        parent[path[-1]] = str(node)
    return doc


def test_verdicts_equal_pyhfs_on_broken_copies(small):
    rng = random.Random(20261122)
    verdicts = []
    for _ in range(120):
        broken = _mutate(small, rng)
        theirs = pyhf_accepts(broken)
        # the compiled check never accepts what pyhf rejects; it may reject what pyhf accepts (pyhf takes
        # true/false as numbers), and then pyhf's check decides
        assert theirs or not fast_accepts(broken), json.dumps(broken)[:2000]
        assert ours_accepts(broken) == theirs
        verdicts.append(theirs)
    # both kinds of document were checked (a mutation can leave a workspace valid, e.g. a changed name)
    assert sum(verdicts) > 5 and verdicts.count(False) > 50


def test_booleans_as_numbers_are_pyhfs_call(small):
    doc = copy.deepcopy(small)
    normsys = next(m for s in doc["channels"][0]["samples"] for m in s["modifiers"] if m["type"] == "normsys")
    normsys["data"]["lo"] = True
    assert not fast_accepts(doc)
    assert ours_accepts(doc) == pyhf_accepts(doc) is True


def test_invalid_document_raises_pyhfs_message(small):
    broken = copy.deepcopy(small)
    broken["channels"][0]["samples"][0]["modifiers"][0]["type"] = "nosuch"
    with pytest.raises(pyhf.exceptions.InvalidSpecification) as ours:
        pyhfschema.validate(broken, "workspace.json")
    with pytest.raises(pyhf.exceptions.InvalidSpecification) as theirs:
        pyhf.schema.validate(broken, "workspace.json")
    assert str(ours.value) == str(theirs.value)


def test_numpy_arrays_are_judged_by_pyhf(small):
    # pyhf takes arrays where the schema says list; the compiled validator cannot read them
    doc = copy.deepcopy(small)
    doc["observations"][0]["data"] = np.asarray(doc["observations"][0]["data"])
    assert ours_accepts(doc) and pyhf_accepts(doc)
    doc["observations"][0]["name"] = 3
    assert not ours_accepts(doc)
