"""Sphinx configuration for the channels_app documentation.

Built in CI with ``sphinx-build -W`` (``make docs``, part of ``make test``):
a broken reference or a missing included file fails the build.
"""

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "testproject")]

# autodoc imports the package and the demo, which need configured settings.
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "testproject.settings")
import django  # noqa: E402

django.setup()

import channels_app  # noqa: E402

project = "channels_app"
author = "The channels_app developers"
copyright = "the channels_app developers"
release = channels_app.__version__
version = ".".join(release.split(".")[:2])

extensions = ["sphinx.ext.autodoc", "sphinx.ext.viewcode"]

root_doc = "index"
exclude_patterns = ["_build"]
nitpicky = False
autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_default_options = {"show-inheritance": True}

html_theme = "alabaster"
html_title = f"channels_app {release}"
html_theme_options = {
    "description": "Real-time Django over ASGI",
    "fixed_sidebar": True,
}
