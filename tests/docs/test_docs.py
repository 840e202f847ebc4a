"""The documentation's code: valid, and in the tutorial, the demo's own."""

import ast
import re
import textwrap
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parent.parent.parent / "docs"
BLOCK_START = re.compile(r"^(\s*)\.\. code-block:: (\S+)\s*$")


def code_blocks(path: Path) -> list[tuple[str, int, str]]:
    """``(language, line number, code)`` of each ``code-block`` in ``path``."""
    lines = path.read_text().splitlines()
    blocks = []
    for number, line in enumerate(lines):
        match = BLOCK_START.match(line)
        if not match:
            continue
        indent = len(match.group(1))
        body = []
        for following in lines[number + 1 :]:
            if following.strip() and len(following) - len(following.lstrip()) <= indent:
                break
            body.append(following)
        blocks.append((match.group(2), number + 1, textwrap.dedent("\n".join(body))))
    return blocks


ALL_PAGES = sorted(DOCS.rglob("*.rst"))
PYTHON_BLOCKS = [
    pytest.param(code, id=f"{page.relative_to(DOCS)}:{line}")
    for page in ALL_PAGES
    for language, line, code in code_blocks(page)
    if language == "python"
]


def test_the_docs_have_python_examples():
    assert len(PYTHON_BLOCKS) > 10


@pytest.mark.parametrize("code", PYTHON_BLOCKS)
def test_python_examples_are_valid_python(code):
    compile(code, "<docs>", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
