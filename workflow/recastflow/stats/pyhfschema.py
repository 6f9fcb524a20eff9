"""pyhf's JSON schemas, checked by a compiled validator.

pyhf validates with ``jsonschema``, in pure Python: a 1Lbb workspace (1.2 MB) takes seconds, and
even checking only what a point's patch changed took 0.15-0.19 s, a tenth of a grid point's time.
``jsonschema_rs`` checks the same documents against the same schema files (pyhf's own, loaded
from the installed pyhf) in milliseconds. It only decides *whether* a document is valid; when it is
not (or when the document holds what only pyhf's checker takes, such as numpy arrays), pyhf's own
validation runs, so a user sees pyhf's message and nothing is rejected that pyhf accepts. The tests
check that the two agree on the published workspaces and on broken copies of them.
"""

from __future__ import annotations

import functools
from typing import Any

import jsonschema_rs
import pyhf


@functools.cache
def _validator(schema_name: str) -> Any:
    """A compiled validator of one of pyhf's schemas, its references resolved among pyhf's schema files."""
    version = pyhf.schema.version
    schema = pyhf.schema.load_schema(f"{version}/{schema_name}")
    # the schemas refer to each other by names relative to their $id (e.g. "defs.json#/definitions/...")
    resources = [
        (doc["$id"], doc)
        for doc in (pyhf.schema.load_schema(f"{version}/{name}") for name in ("defs.json", schema_name))
    ]
    # draft 6 (the schemas' $schema), no format checks: as pyhf's Draft6Validator(format_checker=None)
    return jsonschema_rs.validator_for(
        schema,
        registry=jsonschema_rs.Registry(resources),
        base_uri=schema["$id"],
        offline=True,
        validate_formats=False,
    )


def validate(doc: Any, schema_name: str) -> None:
    """``pyhf.schema.validate(doc, schema_name)``, fast when the document is valid.

    Args:
        doc: the document (a workspace, patchset, ...).
        schema_name: the name of one of pyhf's schemas, e.g. ``"workspace.json"``.

    Raises:
        pyhf.exceptions.InvalidSpecification: the document is invalid (pyhf's message).
    """
    try:
        if _validator(schema_name).is_valid(doc):
            return
    except (ValueError, TypeError):
        pass  # something that is not plain JSON (pyhf also takes numpy arrays as lists): pyhf decides
    pyhf.schema.validate(doc, schema_name)
