"""mkdocs hook: regenerate the reference pages (schemas, CLI, API) before every build."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any


def on_pre_build(config: Any, **kwargs: Any) -> None:
    """Write docs/reference/*.md from the package's schemas, parser and modules."""
    path = Path(__file__).with_name("gen_reference.py")
    spec = importlib.util.spec_from_file_location("gen_reference", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.main()
    # the changelog lives at the top of the repository; its links point into docs/
    root = Path(__file__).resolve().parents[1]
    text = (root / "CHANGELOG.md").read_text().replace("](docs/", "](")
    target = Path(__file__).with_name("changelog.md")
    if not target.exists() or target.read_text() != text:
        target.write_text(text)

