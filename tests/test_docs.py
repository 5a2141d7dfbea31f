"""Generated documentation is current."""

import importlib
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize(("tool", "doc"), [("gen_valueset_docs", "valuesets.md"),
                                           ("gen_data_dictionary", "data-dictionary.md"),
                                           ("gen_study_spec_docs", "study-spec.md")])
def test_generated_doc_is_current(tool: str, doc: str) -> None:
    sys.path.insert(0, str(ROOT / "tools"))
    try:
        module = importlib.import_module(tool)
    finally:
        sys.path.pop(0)
    assert (ROOT / "docs" / doc).read_text(encoding="utf-8") == module.render(), (
        f"docs/{doc} is stale: run .venv/bin/python tools/{tool}.py")
