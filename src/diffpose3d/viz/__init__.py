"""Visualisation: rendered frames and videos (`render`) and interactive HTML pages (`html`).

Names are imported lazily so `import diffpose3d.viz` does not load matplotlib or plotly.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "render_frame": "render",
    "render_video": "render",
    "save_image": "render",
    "write_html": "html",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
