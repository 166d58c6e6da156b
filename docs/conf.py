"""Sphinx configuration for the trio-brod documentation.

Build with ``nox -s docs`` (or ``sphinx-build -W --keep-going -b html docs docs/_build/html``):
warnings are errors, and ``nitpicky`` makes every cross-reference that does not resolve a
warning too, so a renamed class or a typo in a docstring fails the build instead of
rendering as plain text.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
sys.path.insert(0, str(DOCS / "_ext"))
sys.path.insert(0, str(DOCS.parent))

import trio_brod  # noqa: E402

project = "trio-brod"
author = "The trio-brod developers"
copyright = "the trio-brod developers"
release = trio_brod.__version__
version = ".".join(release.split(".")[:2])

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "trio_brod_docs",  # docs/_ext: tables generated from the code (config, errors, APIs)
]

# intersphinx links names from Trio and the standard library to their docs, but it needs
# their inventories from the internet at build time. Builds that have it (Read the Docs)
# turn it on with TRIO_BROD_DOCS_INTERSPHINX=1; the default build works offline.
if os.environ.get("TRIO_BROD_DOCS_INTERSPHINX") == "1":
    extensions.append("sphinx.ext.intersphinx")
    intersphinx_mapping = {
        "python": ("https://docs.python.org/3", None),
        "trio": ("https://trio.readthedocs.io/en/stable", None),
    }

templates_path: list[str] = []
exclude_patterns = ["_build"]
root_doc = "index"
pygments_style = "sphinx"
pygments_dark_style = "monokai"

# -- cross-references -----------------------------------------------------------------------

nitpicky = True
# Names from outside trio-brod resolve only with intersphinx (see above), and a few names in
# signatures are private type aliases or typing constructs that have no page of their own.
nitpick_ignore_regex = [
    # fold's accumulator type variable.
    (r"py:(class|obj)", r"trio_brod\.(client|consumer\.fold)\.A"),
    # The standard library, Trio and pytest (linked when intersphinx is on).
    (r"py:.*", r"(collections\.abc|datetime|enum|os|pathlib|random|ssl|subprocess)\..+"),
    (r"py:.*", r"(types|uuid|contextlib|dataclasses|typing|pickle|struct|re)(\..+)?"),
    (r"py:.*", r"(trio|_?pytest)(\..+)?"),
    (r"py:.*", r"(hypothesis|st)(\..+)?"),
    # Private names in signatures (type variables, helpers of private modules) that the
    # resolver in docs/_ext could not map to a public name: implementation details.
    (r"py:.*", r"(.+\.)?_\w+(\..+)?"),
    # The base class of the generated structures, and constructor arguments of partition
    # producers and consumers (which the client makes, never the user): the internal pool
    # and metadata cache (named unqualified where imported for type checking only).
    (r"py:class", r"trio_brod\.protocol\._primitives\.Struct"),
    (r"py:class", r"ProducerIdentity"),
    (r"py:class", r"TopicConsumer"),
    (r"py:class", r"ConnectionPool|MetadataCache"),
    (r"py:class", r"(trio_brod\.consumer\.fetcher\.)?Fetchers"),
]

# -- autodoc --------------------------------------------------------------------------------

autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_preserve_defaults = True
autodoc_class_signature = "mixed"
autodoc_default_options = {
    "show-inheritance": True,
}
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_rtype = False
napoleon_use_ivar = False
napoleon_attr_annotations = True

# -- HTML -----------------------------------------------------------------------------------

html_theme = "furo"
html_title = f"trio-brod {release}"
html_static_path: list[str] = []
