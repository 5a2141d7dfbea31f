"""Generated documentation is current."""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_valueset_doc_is_current() -> None:
    sys.path.insert(0, str(ROOT / "tools"))
    try:
        import gen_valueset_docs
    finally:
        sys.path.pop(0)
    expected = gen_valueset_docs.render()
    assert (ROOT / "docs" / "valuesets.md").read_text(encoding="utf-8") == expected, (
        "docs/valuesets.md is stale: run .venv/bin/python tools/gen_valueset_docs.py")


def test_data_dictionary_is_current() -> None:
    sys.path.insert(0, str(ROOT / "tools"))
    try:
        import gen_data_dictionary
    finally:
        sys.path.pop(0)
    expected = gen_data_dictionary.render()
    assert (ROOT / "docs" / "data-dictionary.md").read_text(encoding="utf-8") == expected, (
        "docs/data-dictionary.md is stale: run .venv/bin/python tools/gen_data_dictionary.py")
