"""Sphinx configuration for the finetune_kit documentation."""

from __future__ import annotations

import finetune_kit

project = "finetune_kit"
author = "finetune_kit developers"
copyright = "2026, finetune_kit developers"
release = finetune_kit.__version__
version = release

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.viewcode",
    "sphinx.ext.intersphinx",
]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 3
exclude_patterns = ["_build"]

autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_default_options = {"members": True, "show-inheritance": True}
napoleon_google_docstring = True
napoleon_numpy_docstring = False

# No network at build time: intersphinx inventories are not fetched.
intersphinx_mapping: dict = {}
nitpicky = False

html_theme = "furo"
html_title = f"finetune_kit {release}"
html_static_path = ["_static"]

# The config reference is generated from the config dataclasses so it cannot drift from the code.
from pathlib import Path  # noqa: E402

from finetune_kit.cli.reference import cli_reference  # noqa: E402
from finetune_kit.config.reference import config_reference  # noqa: E402

_generated = Path(__file__).parent / "_generated"
_generated.mkdir(exist_ok=True)
for _name, _text in (("config_reference.md", config_reference()), ("cli_reference.md", cli_reference())):
    _page = _generated / _name
    if not _page.exists() or _page.read_text() != _text:
        _page.write_text(_text)
exclude_patterns.append("_generated")
