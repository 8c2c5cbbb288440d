"""Progress bars: notebook widgets in a notebook that has ipywidgets, plain text elsewhere.

tqdm.auto falls back to text in a notebook without ipywidgets, but warns and keeps redrawing the line several
times a second, which a notebook records as a long column of updates; there the text bar redraws rarely.
"""

from __future__ import annotations

import importlib.util
import sys
from typing import Any

from tqdm import std

NOTEBOOK_TEXT_INTERVAL = 30.0  # seconds between redraws of a text bar in a notebook


def in_notebook() -> bool:
    """Whether this process is a Jupyter kernel (as tqdm.autonotebook decides it)."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None and hasattr(ipython, "get_ipython") else None
    return shell is not None and "IPKernelApp" in getattr(shell, "config", {})


def has_widgets() -> bool:
    return importlib.util.find_spec("ipywidgets") is not None


def progress_bar(**options: Any) -> std.tqdm:
    """A tqdm bar (``total``, ``desc``, ``unit``, ``leave``, ``disable``…) of the kind this process can show."""
    if options.get("disable"):
        return std.tqdm(**options)
    if in_notebook():
        if has_widgets():
            from tqdm.notebook import tqdm as widget

            return widget(**options)
        return std.tqdm(mininterval=NOTEBOOK_TEXT_INTERVAL, **options)
    return std.tqdm(dynamic_ncols=True, **options)
