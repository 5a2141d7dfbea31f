"""The README's Python quickstart runs as written: its code blocks are run as a doctest."""

from __future__ import annotations

import doctest
import re
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"


def section(title: str) -> str:
    text = README.read_text(encoding="utf-8")
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start: end if end >= 0 else len(text)]


def python_blocks(text: str) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", text, flags=re.S | re.M)


def test_python_quickstart_runs_as_written() -> None:
    blocks = python_blocks(section("Quickstart: Python"))
    assert blocks, "no python block in the quickstart"
    for block in blocks:
        # every line is an example or its expected output: nothing in the block goes untested
        assert block.lstrip().startswith(">>> "), block
    parser = doctest.DocTestParser()
    runner = doctest.DocTestRunner(optionflags=doctest.NORMALIZE_WHITESPACE | doctest.ELLIPSIS)
    globs: dict[str, object] = {}
    for k, block in enumerate(blocks):
        test = parser.get_doctest(block, globs, f"README.md Quickstart: Python, block {k + 1}", str(README), 0)
        runner.run(test, clear_globs=False)
    result = runner.summarize(verbose=False)
    assert result.attempted >= 10
    assert result.failed == 0, "the README's Python quickstart does not run as written (see the output above)"


def test_statistics_quickstart_runs_as_written() -> None:
    """The statistics block defines its inputs and runs (its numbers are tested against R in tests/stats)."""
    (block,) = python_blocks(section("Quickstart: statistics"))
    namespace: dict[str, object] = {}
    exec(compile(block, "README.md Quickstart: statistics", "exec"), namespace)
    km = namespace["km"]
    assert list(km.table["time"]) == [3, 12]  # type: ignore[attr-defined]
