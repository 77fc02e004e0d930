"""Sphinx configuration of gdcore's API reference (``make docs``; warnings are errors)."""

import os
import sys

sys.path.insert(0, os.path.abspath(".."))  # the gdcore beside this folder, as in a clone

project = "gdcore"
author = "the gdcore developers"
extensions = ["sphinx.ext.autodoc", "numpydoc"]
exclude_patterns = ["_build", "guide.md"]
autodoc_default_options = {"members": False}
numpydoc_show_class_members = False  # each public method is documented where it is listed
numpydoc_class_members_toctree = False
html_theme = "alabaster"
