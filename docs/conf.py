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
# Curly quotes and ellipses, but no dash replacement: "--set" in the CLI reference stays "--set".
smartquotes_action = "qe"

html_theme = "furo"
html_title = f"finetune_kit {release}"
html_static_path = ["_static"]
html_css_files = ["custom.css"]

# The repository link and the version label of the theme: the URL is the project's own
# ([project.urls] Repository in pyproject.toml), the version finetune_kit.__version__.
import tomllib  # noqa: E402
from pathlib import Path  # noqa: E402

with open(Path(__file__).parents[1] / "pyproject.toml", "rb") as _file:
    REPOSITORY = tomllib.load(_file)["project"]["urls"]["Repository"]
_GITHUB_ICON = (
    '<svg stroke="currentColor" fill="currentColor" stroke-width="0" viewBox="0 0 16 16">'
    '<path fill-rule="evenodd" d="M8 0C3.58 0 0 3.58 0 8c0 3.54 2.29 6.53 5.47 7.59.4.07.55-.17'
    ".55-.38 0-.19-.01-.82-.01-1.49-2.01.37-2.53-.49-2.69-.94-.09-.23-.48-.94-.82-1.13-.28-.15-.68"
    "-.52-.01-.53.63-.01 1.08.58 1.23.82.72 1.21 1.87.87 2.33.66.07-.52.28-.87.51-1.07-1.78-.2-3.64"
    "-.89-3.64-3.95 0-.87.31-1.59.82-2.15-.08-.2-.36-1.02.08-2.12 0 0 .67-.21 2.2.82.64-.18 1.32-.27"
    " 2-.27.68 0 1.36.09 2 .27 1.53-1.04 2.2-.82 2.2-.82.44 1.1.16 1.92.08 2.12.51.56.82 1.27.82 2.15"
    " 0 3.07-1.87 3.75-3.65 3.95.29.25.54.73.54 1.48 0 1.07-.01 1.93-.01 2.2 0 .21.15.46.55.38A8.013"
    ' 8.013 0 0016 8c0-4.42-3.58-8-8-8z"></path></svg>'
)
html_theme_options = {
    "source_repository": REPOSITORY + "/",
    "source_branch": "main",
    "source_directory": "docs/",
    "footer_icons": [
        {"name": "GitHub", "url": REPOSITORY, "html": _GITHUB_ICON, "class": ""},
    ],
    "announcement": f"finetune_kit {release} &middot; <a href='{REPOSITORY}'>source on GitHub</a>",
}

# The config reference is generated from the config dataclasses so it cannot drift from the code.
from finetune_kit.cli.reference import cli_reference  # noqa: E402
from finetune_kit.config.reference import config_reference  # noqa: E402

_generated = Path(__file__).parent / "_generated"
_generated.mkdir(exist_ok=True)
for _name, _text in (("config_reference.md", config_reference()), ("cli_reference.md", cli_reference())):
    _page = _generated / _name
    if not _page.exists() or _page.read_text() != _text:
        _page.write_text(_text)
exclude_patterns.append("_generated")
