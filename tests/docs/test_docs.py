"""The documentation's code: valid, and in the tutorial, the demo's own."""

import ast
import re
import shlex
import textwrap
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parent.parent.parent / "docs"
BLOCK_START = re.compile(r"^(\s*)\.\. code-block:: (\S+)\s*$")
OPTION = re.compile(r"^\s+:[\w-]+:")


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
        following_lines = lines[number + 1 :]
        # Options such as ``:caption: chat/views.py`` are not code.
        while following_lines and OPTION.match(following_lines[0]):
            following_lines = following_lines[1:]
        for following in following_lines:
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


TUTORIAL_PAGES = sorted((DOCS / "tutorial").glob("*.rst"))
#: The from-scratch tutorial (part1.rst, ...), whose listings a reader types
#: in; tests/docs/test_tutorial.py builds the project from them.
TUTORIAL_PARTS = sorted((DOCS / "tutorial").glob("part*.rst"))
#: The "going further" pages that read along the demo in testproject/.
READ_ALONG_PAGES = [
    page
    for page in TUTORIAL_PAGES
    if page not in TUTORIAL_PARTS and page.name != "index.rst"
]


def test_the_tutorial_has_parts_and_read_along_pages():
    assert [page.name for page in TUTORIAL_PARTS] == [
        "part1.rst",
        "part2.rst",
        "part3.rst",
    ]
    assert len(READ_ALONG_PAGES) >= 5


def test_read_along_code_is_the_demos_own_or_commands_the_tests_run():
    """On the read-along pages, listings come from the demo (literalinclude);
    commands are the ones tests/demo/test_deployments.py runs, with the
    environment it uses."""
    from tests.demo.deployment import (
        MIGRATE,
        RUNSERVER,
        RUNSERVER_WITH_WORKER,
        RUNWORKER,
        SHARED_LAYER_SETUPS,
    )

    commands_run = [MIGRATE, RUNSERVER, RUNWORKER, RUNSERVER_WITH_WORKER]
    environments = [set(env.items()) for env in SHARED_LAYER_SETUPS.values()]
    checked = 0
    for page in READ_ALONG_PAGES:
        text = page.read_text()
        assert not re.search(r"^(?!\s*\.\. ).*::\s*$", text, re.MULTILINE), (
            f"{page.name} has a literal block; use literalinclude"
        )
        for language, line, code in code_blocks(page):
            where = f"{page.name}:{line}"
            assert language == "console", f"{where}: include {language} code instead"
            for command in code.splitlines():
                if not command.startswith("$ "):
                    continue
                words = shlex.split(command[2:])
                if words[0] == "python":
                    assert words[1:] in commands_run, f"{where}: {command} untested"
                elif words[0] == "export":
                    pairs = {tuple(w.split("=", 1)) for w in words[1:] if "=" in w}
                    assert any(pairs <= env for env in environments), where
                else:
                    assert words == ["cd", "testproject"], f"{where}: {command}"
                checked += 1
    assert checked >= 5
