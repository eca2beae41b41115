"""Sphinx configuration for the collectives documentation.

Build: ``pip install ".[docs]" && sphinx-build -W -b html docs docs/_build/html``.
The API pages import the installed package, so build in the environment where
collectives is installed.
"""

from __future__ import annotations

import importlib.util
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "_ext"))

import collectives  # noqa: E402

project = "collectives"
author = "the collectives authors"
copyright = "the collectives authors"
version = release = collectives.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.viewcode",
    "numpydoc",
    "myst_parser",
    "sphinxarg.ext",
    "sphinxcontrib.programoutput",
    "results_table",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store"]
templates_path = ["_templates"]

myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 3

# numpydoc: no class-member tables of its own (autodoc lists members), and no
# cross-reference guessing for the free text of parameter types
numpydoc_show_class_members = False
numpydoc_xref_param_type = False
numpydoc_validation_checks: set = set()

autodoc_default_options = {"members": True, "show-inheritance": True}
autodoc_member_order = "bysource"
autodoc_typehints = "none"  # numpydoc's Parameters sections say the types
# the torch process group's methods would otherwise show torch's C++ docstrings
autodoc_inherit_docstrings = False
autosummary_generate = False
# classes of other projects that docstrings name (there is no inventory to link them to)
nitpick_ignore = [("py:class", "networkx.Graph"),
                  ("py:class", "torch.distributed.distributed_c10d.ProcessGroup")]
# the torch backend is documented from its docstrings when torch is installed
# (CI installs it); without torch its API page says so instead of failing
HAVE_TORCH = importlib.util.find_spec("torch") is not None
TORCH_PAGE = "reference/api/torch"
TORCH_MISSING = """
.. note::

   These pages were built without torch, so the backend's API is not shown
   here: ``pip install ".[docs,torch]"`` and build again.
"""


def _without_torch(app, docname, source):
    if docname == TORCH_PAGE and not HAVE_TORCH:
        source[0] = source[0].split(".. automodule::")[0] + TORCH_MISSING

html_theme = "furo"
html_title = f"collectives {release}"
html_static_path = ["_static"]
html_css_files = ["results.css"]

# the CLI examples run at build time; a failing command fails the build
programoutput_use_ansi = False


def setup(app):
    app.connect("source-read", _without_torch)
