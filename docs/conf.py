"""Sphinx configuration for skvqad (numpydoc API pages and a sphinx-gallery).

``SKVQAD_DOCS_OFFLINE=1`` builds without intersphinx (no network, as in CI):
links to Python, scikit-learn, skorch and torch then stay plain text.
"""

import os

project = "skvqad"
author = "skvqad developers"
extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.intersphinx",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
]
autosummary_generate = True
numpydoc_show_class_members = False
sphinx_gallery_conf = {
    "examples_dirs": "../examples",
    "gallery_dirs": "auto_examples",
    "filename_pattern": r"plot_",
}
intersphinx_mapping = (
    {}
    if os.environ.get("SKVQAD_DOCS_OFFLINE")
    else {
        "python": ("https://docs.python.org/3", None),
        "sklearn": ("https://scikit-learn.org/stable", None),
        "skorch": ("https://skorch.readthedocs.io/en/stable", None),
        "torch": ("https://pytorch.org/docs/stable", None),
    }
)
html_theme = "alabaster"
