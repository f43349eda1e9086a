"""A result's export files: `<name>_person<ID>.bvh` per person, `<name>.glb` for everyone."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

from diffpose3d.export.formats import FORMATS, parse_formats
from diffpose3d.inference.result import PoseResult


def export_result(result: PoseResult, formats: Iterable[str] = FORMATS, *, name: str = "result",
                  path_of: Callable[[str], Path] | None = None, folder: str | Path | None = None,
                  fps: float | None = None) -> list[Path]:
    """Write `result` as BVH (one file per person) and/or GLB (one file, a skeleton per person);
    returns the paths. Files go to `path_of(file name)` (a staging folder's) or into `folder`;
    `fps` defaults to the input's frame rate (`export.motion.DEFAULT_FPS` when it has none)."""
    from diffpose3d import __version__
    from diffpose3d.export.bvh import write_bvh
    from diffpose3d.export.gltf import write_glb
    from diffpose3d.export.motion import person_motion

    if path_of is None:
        target = Path(folder if folder is not None else ".")
        target.mkdir(parents=True, exist_ok=True)
        path_of = lambda n: target / n
    motions = [person_motion(result, p, fps) for p in result.people]
    paths = []
    for fmt in parse_formats(list(formats)):
        if fmt == "bvh":
            paths += [write_bvh(m, path_of(f"{name}_person{m.person_id}.bvh")) for m in motions]
        else:
            paths.append(write_glb(motions, path_of(f"{name}.glb"), generator=f"diffpose3d {__version__}"))
    return paths
