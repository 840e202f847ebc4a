"""A Channels-4-tutorial project with one typo in its routing module.

``routing.py`` names ``consumers.ChatConsumr``; the consumer is
``ChatConsumer``.  The tests import it in-process (as
``tests.compat.checks_typo``) and copy it into a temporary directory to run
``manage.py`` on it (as ``checks_typo``), so every import here is relative.
"""

import os
import shutil
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent.parent  # the repository, for channels_app


def copy_to(directory: Path) -> Path:
    """Copy the project into ``directory`` (package ``checks_typo``, manage.py
    beside it) so a test may run it and edit it; returns ``directory``."""
    shutil.copytree(
        HERE, directory / "checks_typo", ignore=shutil.ignore_patterns("__pycache__")
    )
    shutil.copy(HERE / "manage.py", directory / "manage.py")
    return directory


def typo_line(routing: Path = HERE / "routing.py") -> int:
    """The line of ``routing`` that has the typo."""
    lines = routing.read_text().splitlines()
    return next(n for n, line in enumerate(lines, 1) if "ChatConsumr" in line)


def manage_env(**extra: str) -> dict:
    """The environment for running ``manage.py`` in a copy of the project."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHECKS_TYPO_")}
    env.update(
        DJANGO_SETTINGS_MODULE="checks_typo.settings",
        PYTHONPATH=str(ROOT),
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env
