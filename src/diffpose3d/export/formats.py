"""The export formats `predict --export` and `PoseResult.export` know (cheap to import: no numpy)."""

from __future__ import annotations

from collections.abc import Iterable

from diffpose3d.errors import ConfigError

FORMATS = ("bvh", "gltf")


def parse_formats(text: str | Iterable[str]) -> tuple[str, ...]:
    """"bvh,gltf" (or a list) -> ("bvh", "gltf"); "glb" is taken for "gltf". Unknown ones are refused."""
    items = [t.strip().lower() for t in (text.split(",") if isinstance(text, str) else text)]
    items = ["gltf" if t == "glb" else t for t in items if t]
    unknown = [t for t in items if t not in FORMATS]
    if unknown or not items:
        raise ConfigError(f"export format {', '.join(unknown) or 'missing'}: choose from {', '.join(FORMATS)} "
                          "(comma-separated)")
    return tuple(dict.fromkeys(items))
