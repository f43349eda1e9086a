"""The fit-gmm engine: per-joint 2D GMMs (the H_K evidence) for a whole 2D dataset file, resumable.

Input: a 2D file in the VideoPose3D layout (`positions_2d[subject][action]` -> one `(T, J, 2)` pixel
array per camera, `metadata` with `keypoints_symmetry`). With `--heatmaps FILE` (an npz holding
pickled dicts `heatmaps[subject][action]` -> per camera `(T, J, H, W)` and `affines[...]` -> per
camera `(T, 2, 3)` heatmap-pixel -> image-pixel maps) the mixtures are fitted to those heatmaps;
without it, the ground-truth keypoints go through the seeded synthetic detector
(`uncertainty.synthetic`) and the rendered heatmaps are fitted the same way.

Output (written atomically): the authors' layout, `positions_2d[subject][action]` -> per camera
`(T, J, K, 5)` = [weight, mean x, mean y, var x, var y] in pixels, readable by
`data.gmm_files.read_gmm_file`, plus the extra key `covariance_2d[subject][action]` -> per camera
`(T, J, K)` (the x-y covariance, pixels^2, which the authors' layout drops) and `metadata` (the
input's, with a `gmm` entry describing how the file was made).

Resumable: frames are processed in fixed chunks of `--chunk-frames`; each finished chunk is saved
in the sidecar folder `OUT.parts/` (with a manifest of the settings). A rerun with the same
settings skips finished chunks (each verified: a damaged one is fitted again, with a warning); the
result is identical to an uninterrupted run.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import stat
import sys
import zipfile
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np
import torch

from diffpose3d.config import SyntheticDetectorConfig
from diffpose3d.config_ranges import RANGES, SEED_MAX, integer, numbers
from diffpose3d.data.base import require_dict
from diffpose3d.data.gmm_files import LAYOUT, encode_gmm, write_gmm_file
from diffpose3d.data.h36m import IMAGE_SIZES as H36M_IMAGE_SIZES
from diffpose3d.data.humaneva import IMAGE_SIZE as HUMANEVA_IMAGE_SIZE
from diffpose3d.errors import ConfigError, InputFileError, OutputFileError
from diffpose3d.evidence.heatmaps import heatmaps_to_gmm
from diffpose3d.evidence.mixture2d import mixture_to_pixels
from diffpose3d.evidence.synthetic import draw_modes, synthetic_heatmaps
from diffpose3d.io.atomic import check_output_file, file_kind, save_json_atomic, save_npz_atomic
from diffpose3d.io.unpickle import load_pickled_npz

DATASETS = ("humaneva", "h36m", "custom")


@dataclass
class GmmFitSettings:
    """What a fit-gmm run reads, how it fits and where it writes (a rerun with the same settings
    resumes)."""

    data_2d: str
    out: str
    heatmaps: str | None = None  # None: the synthetic detector on the ground-truth keypoints
    dataset: str = "humaneva"  # sets the image size per camera; custom: give image_size
    image_size: tuple[int, int] | None = None
    components: int = 5
    top_k: int = 64
    seed: int = 0
    chunk_frames: int = 256
    synthetic: SyntheticDetectorConfig = field(default_factory=SyntheticDetectorConfig)


@dataclass
class Job:
    """One (subject, action, camera) array of the input file."""

    subject: str
    action: str
    camera: int
    keypoints: np.ndarray  # (T, J, 2) pixels
    image_size: tuple[int, int]


# -- input -------------------------------------------------------------------------------------


def _image_size(settings: GmmFitSettings, camera: int, path: str) -> tuple[int, int]:
    if settings.dataset == "humaneva":
        return HUMANEVA_IMAGE_SIZE
    if settings.dataset == "h36m":
        if camera >= len(H36M_IMAGE_SIZES):
            raise InputFileError(path, f"camera index {camera} is not a Human3.6M camera (0-3)")
        return H36M_IMAGE_SIZES[camera]
    if not settings.image_size:
        raise InputFileError(path, "--dataset custom needs --image-size W H")
    return (int(settings.image_size[0]), int(settings.image_size[1]))


def load_jobs(settings: GmmFitSettings) -> tuple[list[Job], dict]:
    path = settings.data_2d
    raw = require_dict(load_pickled_npz(path, "positions_2d"), path, "positions_2d")
    meta = load_pickled_npz(path, "metadata", optional=True)
    meta = meta if isinstance(meta, dict) else {}
    jobs: list[Job] = []
    joints = None
    for subject in sorted(raw):
        actions = require_dict(raw[subject], path, f"subject '{subject}'")
        for action in sorted(actions):
            views = actions[action]
            if not isinstance(views, (list, tuple)):
                raise InputFileError(path, f"'{subject}/{action}': expected a list with one array per camera")
            for c, kp in enumerate(views):
                kp = np.asarray(kp, dtype=np.float32)
                if kp.ndim != 3 or kp.shape[-1] != 2 or kp.shape[0] == 0:
                    raise InputFileError(path, f"'{subject}/{action}' camera {c}: expected (T, J, 2), got {kp.shape}")
                if joints is not None and kp.shape[1] != joints:
                    raise InputFileError(path, f"'{subject}/{action}' camera {c}: {kp.shape[1]} joints, not {joints}")
                joints = kp.shape[1]
                jobs.append(Job(str(subject), str(action), c, kp, _image_size(settings, c, path)))
    if not jobs:
        raise InputFileError(path, "no sequences in positions_2d")
    return jobs, meta


def _symmetry(meta: dict, path: str, joints: int) -> tuple[list[int], list[int]]:
    sym = meta.get("keypoints_symmetry")
    if sym is None:
        return [], []
    try:
        left, right = [int(i) for i in sym[0]], [int(i) for i in sym[1]]
    except (TypeError, ValueError, IndexError):
        raise InputFileError(path, "metadata keypoints_symmetry must be [left indices, right indices]") from None
    if len(left) != len(right) or any(not 0 <= i < joints for i in left + right):
        raise InputFileError(path, "metadata keypoints_symmetry: mismatched or out-of-range joint indices")
    return left, right


class HeatmapSource:
    """The `--heatmaps` file, checked against the keypoint jobs."""

    def __init__(self, path: str, jobs: list[Job]) -> None:
        hms = require_dict(load_pickled_npz(path, "heatmaps"), path, "heatmaps")
        affs = require_dict(load_pickled_npz(path, "affines"), path, "affines")
        self.arrays: dict[tuple[str, str, int], tuple[np.ndarray, np.ndarray]] = {}
        for job in jobs:
            try:
                hm = np.asarray(hms[job.subject][job.action][job.camera])
                af = np.asarray(affs[job.subject][job.action][job.camera], dtype=np.float32)
            except (KeyError, IndexError, TypeError):
                raise InputFileError(path, f"no heatmaps for '{job.subject}/{job.action}' camera {job.camera}") from None
            t, j = job.keypoints.shape[:2]
            if hm.ndim != 4 or hm.shape[:2] != (t, j) or af.shape != (t, 2, 3):
                raise InputFileError(path, f"'{job.subject}/{job.action}' camera {job.camera}: heatmaps must be "
                                           f"({t}, {j}, H, W) and affines ({t}, 2, 3), got {hm.shape}, {af.shape}")
            if not np.isfinite(af).all():
                raise InputFileError(path, f"'{job.subject}/{job.action}' camera {job.camera}: affines hold NaN or inf")
            self.arrays[(job.subject, job.action, job.camera)] = (hm, af)

    def get(self, job: Job, a: int, b: int) -> tuple[np.ndarray, np.ndarray]:
        hm, af = self.arrays[(job.subject, job.action, job.camera)]
        return hm[a:b], af[a:b]


# -- fitting ---------------------------------------------------------------------------------------


def _seed(*values: int) -> int:
    return int(np.random.SeedSequence([int(v) for v in values]).generate_state(1)[0])


def _segments(jobs: list[Job], start: int, stop: int) -> list[tuple[Job, int, int]]:
    """The (job, first, last) frame ranges that global frames [start, stop) cover."""
    out, offset = [], 0
    for job in jobs:
        t = len(job.keypoints)
        a, b = max(start, offset), min(stop, offset + t)
        if a < b:
            out.append((job, a - offset, b - offset))
        offset += t
    return out


def fit_chunk(settings: GmmFitSettings, jobs, start, stop, pairs, detector, heatmaps: HeatmapSource | None, index: int):
    """Authors'-layout rows `(F, J, K, 5)` and x-y covariances `(F, J, K)` for frames [start, stop)."""
    gen = torch.Generator().manual_seed(_seed(settings.seed, index, 0))
    em_gen = torch.Generator().manual_seed(_seed(settings.seed, index, 1))
    rows, covs = [], []
    for job, a, b in _segments(jobs, start, stop):
        if heatmaps is None:
            modes = draw_modes(job.keypoints[a:b], pairs, detector, generator=gen)
            hm, aff = synthetic_heatmaps(job.keypoints[a:b], modes, detector)
        else:
            hm, aff = heatmaps.get(job, a, b)
        gmm = heatmaps_to_gmm(hm, aff, job.image_size, settings.components, top_k=settings.top_k, generator=em_gen)
        row, cov = encode_gmm(mixture_to_pixels(gmm, *job.image_size))
        rows.append(row)
        covs.append(cov)
    return np.concatenate(rows), np.concatenate(covs)


def parts_dir(out: Path) -> Path:
    return out.with_name(out.name + ".parts")


# The only files fit-gmm writes in OUT.parts/ (and atomic_write's temporaries of them).
_PART_FILE = re.compile(r"manifest\.json|chunk_\d{6}\.npz|\.(manifest\.json|chunk_\d{6}\.npz)\.[^/]*\.tmp")


def own_parts(parts: Path) -> list[Path]:
    """The files of a parts folder this tool wrote (none when it does not exist).

    Refused in one line: a parts path that is not a real folder (a file, a link), or a folder
    holding anything fit-gmm does not write, or chunks without their manifest: an unrelated
    folder of that name is never emptied."""
    try:
        mode = os.lstat(parts).st_mode
    except FileNotFoundError:
        return []
    if not stat.S_ISDIR(mode):
        raise OutputFileError(parts, f"is {file_kind(mode)}, not fit-gmm's parts folder: remove it, or choose another --out")
    entries = list(os.scandir(parts))
    foreign = [e.name for e in entries if not (e.is_file(follow_symlinks=False) and _PART_FILE.fullmatch(e.name))]
    if foreign or (entries and not any(e.name == "manifest.json" for e in entries)):
        what = f"holds {foreign[0]!r}, which" if foreign else "holds chunks without a manifest.json, which"
        raise OutputFileError(parts, f"{what} fit-gmm did not write: not fit-gmm's parts folder "
                                     "(move it away, or choose another --out)")
    return [Path(e.path) for e in entries]


def remove_parts(parts: Path) -> None:
    """Delete fit-gmm's own files in the parts folder, then the folder if that left it empty."""
    for path in own_parts(parts):
        path.unlink(missing_ok=True)
    with contextlib.suppress(FileNotFoundError):
        parts.rmdir()


def _manifest(settings: GmmFitSettings, detector: SyntheticDetectorConfig, total: int) -> dict:
    src = [Path(p) for p in (settings.data_2d, settings.heatmaps) if p]
    return {
        "inputs": [{"path": str(p.resolve()), "size": p.stat().st_size, "mtime": p.stat().st_mtime} for p in src],
        "dataset": settings.dataset, "image_size": settings.image_size, "components": settings.components,
        "top_k": settings.top_k, "seed": settings.seed, "chunk_frames": settings.chunk_frames, "frames": total,
        "synthetic": asdict(detector) if not settings.heatmaps else None,
    }


# The command-line flag of each checked setting, and its allowed range.
_FLAG_RANGES = {
    "components": ("--components", integer(1, 64)), "top_k": ("--top-k", integer(1, 65_536)),
    "seed": ("--seed", integer(0, SEED_MAX)), "chunk_frames": ("--chunk-frames", integer(1, 10_000_000)),
}


def check_settings(settings: GmmFitSettings) -> None:
    """Every setting in its range (`ConfigError` naming the flag), and an output path that is a file's."""
    checks = [(getattr(settings, name), flag, check) for name, (flag, check) in _FLAG_RANGES.items()]
    checks += [(getattr(settings.synthetic, f.name), f"--{f.name.replace('_', '-')}", RANGES[f"evidence.synthetic.{f.name}"])
               for f in fields(settings.synthetic) if f"evidence.synthetic.{f.name}" in RANGES]
    if settings.image_size is not None:
        checks.append((list(settings.image_size), "--image-size", numbers(1, 100_000, length=2, whole=True)))
    for value, flag, check in checks:
        if (allowed := check(value)) is not None:
            raise ConfigError(f"{flag} must be {allowed}, got {value}")
    out = Path(settings.out)
    if not out.name:
        raise OutputFileError(out, "is a folder: --out names the .npz file to write")
    check_output_file(out)  # a folder, device, FIFO or link is refused, never replaced
    own_parts(parts_dir(out))


def _read_chunk(path: Path, rows: int, joints: int, components: int) -> tuple[np.ndarray, np.ndarray] | None:
    """A finished chunk's arrays, or None when it is unreadable or not the chunk expected."""
    try:
        with np.load(path, allow_pickle=False) as data:
            gmm, cov = data["gmm"], data["cov"]
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, RuntimeError):
        return None
    if gmm.shape != (rows, joints, components, 5) or cov.shape != (rows, joints, components):
        return None
    if gmm.dtype != np.float32 or cov.dtype != np.float32 or not (np.isfinite(gmm).all() and np.isfinite(cov).all()):
        return None
    return gmm, cov


def fit_dataset(settings: GmmFitSettings, *, progress: bool = True, stop_after_chunks: int | None = None) -> bool:
    """Fit every frame of `settings.data_2d` into `settings.out`; False if stopped after
    `stop_after_chunks` chunks (a test hook: the rerun resumes)."""
    check_settings(settings)
    try:
        return _fit_dataset(settings, progress, stop_after_chunks)
    except OSError as exc:
        where = exc.filename or settings.out
        raise OutputFileError(where, f"cannot write ({exc.strerror or exc})") from None


def _fit_dataset(settings: GmmFitSettings, progress: bool, stop_after_chunks: int | None) -> bool:
    jobs, meta = load_jobs(settings)
    joints = jobs[0].keypoints.shape[1]
    pairs = _symmetry(meta, settings.data_2d, joints)
    detector = settings.synthetic
    heatmaps = HeatmapSource(settings.heatmaps, jobs) if settings.heatmaps else None
    total = sum(len(j.keypoints) for j in jobs)
    n_chunks = -(-total // settings.chunk_frames)

    out = Path(settings.out)
    parts = parts_dir(out)
    manifest = _manifest(settings, detector, total)
    if own_parts(parts):
        try:
            old = json.loads((parts / "manifest.json").read_bytes().decode("utf-8"))
        except (OSError, ValueError, RecursionError):
            old = None
        if old != json.loads(json.dumps(manifest)):  # other settings or inputs: finished chunks do not apply
            why = "other settings or inputs" if old is not None else "an unreadable manifest.json"
            print(f"diffpose3d: note: {parts}: {why}; fitting every chunk again", file=sys.stderr)
            remove_parts(parts)
    parts.mkdir(parents=True, exist_ok=True)
    save_json_atomic(parts / "manifest.json", manifest)

    def part(c: int) -> Path:
        return parts / f"chunk_{c:06d}.npz"

    def rows(c: int) -> int:
        return min(total, (c + 1) * settings.chunk_frames) - c * settings.chunk_frames

    todo = []
    for c in range(n_chunks):
        if part(c).is_file() and _read_chunk(part(c), rows(c), joints, settings.components) is None:
            print(f"diffpose3d: warning: {part(c)}: damaged or incomplete; fitting it again", file=sys.stderr)
            part(c).unlink()
        if not part(c).is_file():
            todo.append(c)
    from tqdm import tqdm

    bar = tqdm(total=n_chunks, initial=n_chunks - len(todo), unit="chunk", desc="fit-gmm",
               disable=not progress, dynamic_ncols=True)
    for done, c in enumerate(todo):
        if stop_after_chunks is not None and done >= stop_after_chunks:
            bar.close()
            return False
        start, stop = c * settings.chunk_frames, min(total, (c + 1) * settings.chunk_frames)
        gmm, cov = fit_chunk(settings, jobs, start, stop, pairs, detector, heatmaps, c)
        save_npz_atomic(part(c), gmm=gmm, cov=cov)
        bar.update(1)
    bar.close()

    chunks = [_read_chunk(part(c), rows(c), joints, settings.components) for c in range(n_chunks)]
    if any(chunk is None for chunk in chunks):  # damaged while this run went on: the next run refits it
        raise OutputFileError(parts, "a finished chunk was damaged during the run; rerun the same command")
    gmm_all = np.concatenate([g for g, _ in chunks])
    cov_all = np.concatenate([c for _, c in chunks])
    positions: dict = {}
    covariances: dict = {}
    offset = 0
    for job in jobs:
        t = len(job.keypoints)
        positions.setdefault(job.subject, {}).setdefault(job.action, []).append(gmm_all[offset : offset + t])
        covariances.setdefault(job.subject, {}).setdefault(job.action, []).append(cov_all[offset : offset + t])
        offset += t
    info = {k: v for k, v in manifest.items() if k != "inputs"}
    info.update(source="heatmaps" if heatmaps else "synthetic", layout=LAYOUT,
                extra_keys={"covariance_2d": "x-y covariance per kernel, px^2"})
    meta = dict(meta, gmm=info)
    write_gmm_file(out, positions, meta, covariance_2d=covariances)
    remove_parts(parts)
    return True
