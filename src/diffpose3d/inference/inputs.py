"""Turn what a user points `predict` at into per-joint 2D evidence.

An input is an image, a folder of images, a video, a keypoints file (COCO-style JSON or npz) or a
heatmaps npz. Images and video frames go through a 2D detector (its heatmaps when it has them,
otherwise its keypoints + confidence); frames with no person get no evidence at all (every joint
missing, broad H_K). Video frames are streamed: only the per-frame evidence is kept in memory.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from diffpose3d.errors import InputFileError
from diffpose3d.evidence.detection import detection_evidence
from diffpose3d.evidence.mixture2d import stack_mixtures
from diffpose3d.io.images import is_image, list_images, read_image
from diffpose3d.io.video import VideoReader, is_video
from diffpose3d.mixtures.gmm import GaussianMixture

KEYPOINT_SUFFIXES = {".json", ".npz"}
HEATMAP_KEYS = ("heatmaps", "heatmap_to_image", "image_size", "layout")


@dataclass
class Evidence2D:
    """Per-frame 2D evidence in one layout: mixtures in normalised coordinates, confidences."""

    name: str
    layout: str
    image_size: tuple[int, int]
    gmm: GaussianMixture  # (T, J, M, 2)
    confidence: np.ndarray  # (T, J)
    frame_indices: np.ndarray  # (T,)
    kind: str  # image | images | video | keypoints | heatmaps
    fps: float = 0.0
    frames: Callable[[], Iterator[np.ndarray]] | None = None  # re-reads the frames, for renders
    detector: dict = field(default_factory=dict)


def _detect_frames(frames: Iterator[np.ndarray], detector, total: int | None, desc: str, progress: bool):
    """Detect every frame; returns per-frame mixtures, confidences and the set of image sizes."""
    gmms, confs, sizes = [], [], set()
    for image in tqdm(frames, total=total, desc=desc, disable=not progress, unit="frame"):
        size = (int(image.shape[1]), int(image.shape[0]))
        sizes.add(size)
        gmm, conf = detection_evidence(detector.detect(image), size, _layout_joints(detector.layout))
        gmms.append(gmm)
        confs.append(conf)
    return gmms, confs, sizes


def _layout_joints(layout: str) -> int:
    from diffpose3d.skeleton import get_skeleton

    return get_skeleton(layout).num_joints


def read_input(
    path: str | Path,
    detector_factory: Callable[[], object] | None = None,
    *,
    layout: str = "humaneva15",
    source_layout: str | None = None,
    image_size: tuple[int, int] | None = None,
    progress: bool = True,
) -> Evidence2D:
    """Dispatch on what `path` is. `detector_factory` is called only for images and videos.

    Keypoints files are mapped to `layout` (the model's) on reading; `source_layout` and
    `image_size` fill in what a file does not say (COCO JSON carries no image size).
    """
    path = Path(path)
    if not path.exists():
        raise InputFileError(path, "no such file or folder")
    if path.is_dir():
        images = list_images(path)
        if not images:
            raise InputFileError(path, "folder holds no images (.jpg, .png, ...)")
        return _from_images(path, images, detector_factory, progress, kind="images")
    if is_image(path):
        return _from_images(path, [path], detector_factory, progress, kind="image")
    if is_video(path):
        return _from_video(path, detector_factory, progress)
    if path.suffix.lower() in KEYPOINT_SUFFIXES:
        return _from_file(path, layout, source_layout, image_size)
    raise InputFileError(path, "unsupported input (an image, a folder of images, a video, or a .json/.npz keypoints file)")


def _need_detector(detector_factory, path: Path):
    if detector_factory is None:
        raise InputFileError(path, "images and videos need a 2D detector (pip install 'diffpose3d[detect]')")
    return detector_factory()


def _from_images(path: Path, images: list[Path], detector_factory, progress: bool, kind: str) -> Evidence2D:
    detector = _need_detector(detector_factory, path)
    try:
        gmms, confs, sizes = _detect_frames((read_image(p) for p in images), detector, len(images), "detecting", progress and len(images) > 1)
    finally:
        detector.close()
    if len(sizes) != 1:
        raise InputFileError(path, "images of different sizes in one folder: run them separately")
    size = sizes.pop()
    return Evidence2D(
        name=path.stem, layout=detector.layout, image_size=size, gmm=stack_mixtures(gmms),
        confidence=np.concatenate(confs), frame_indices=np.arange(len(images)), kind=kind,
        frames=lambda: (read_image(p) for p in images),
    )


def _from_video(path: Path, detector_factory, progress: bool) -> Evidence2D:
    detector = _need_detector(detector_factory, path)
    try:
        with VideoReader(path) as reader:
            fps = reader.fps
            gmms, confs, sizes = _detect_frames(iter(reader), detector, reader.num_frames or None, "detecting", progress)
    finally:
        detector.close()
    if not gmms:
        raise InputFileError(path, "video has no frames")

    def frames() -> Iterator[np.ndarray]:
        with VideoReader(path) as again:
            yield from again

    return Evidence2D(
        name=path.stem, layout=detector.layout, image_size=sizes.pop(), gmm=stack_mixtures(gmms),
        confidence=np.concatenate(confs), frame_indices=np.arange(len(gmms)), kind="video",
        fps=fps, frames=frames,
    )


def _from_file(path: Path, layout: str, source_layout: str | None, image_size: tuple[int, int] | None) -> Evidence2D:
    """A heatmaps npz (keys heatmaps, heatmap_to_image, image_size, layout) or a keypoints file."""
    from diffpose3d.data.keypoints import load_keypoints
    from diffpose3d.evidence.heatmaps import keypoints_to_gmm

    if path.suffix.lower() == ".npz":
        arrays = _load_heatmap_arrays(path)
        if arrays is not None:
            return _from_heatmaps(path, arrays)

    seq = load_keypoints(path, layout=layout, image_size=image_size, src_layout=source_layout)
    conf = seq.confidence if seq.confidence is not None else np.ones(seq.keypoints_2d.shape[:2], np.float32)
    conf = np.nan_to_num(conf, nan=0.0).astype(np.float32)
    kp = np.nan_to_num(seq.keypoints_2d).astype(np.float32)
    gmm = keypoints_to_gmm(kp, conf, seq.image_size)
    frames = seq.frame_indices if seq.frame_indices is not None else np.arange(len(seq))
    return Evidence2D(path.stem, seq.skeleton, tuple(seq.image_size), gmm, conf, np.asarray(frames), "keypoints")


def _load_heatmap_arrays(path: Path) -> dict[str, np.ndarray] | None:
    """The arrays of a heatmaps npz, or None when the npz holds no `heatmaps` (a keypoints file)."""
    try:
        with np.load(path, allow_pickle=False) as f:
            if "heatmaps" not in f.files:
                return None
            missing = [k for k in HEATMAP_KEYS if k not in f.files]
            if missing:
                raise InputFileError(path, f"a heatmaps npz also needs {', '.join(missing)}")
            return {k: f[k] for k in HEATMAP_KEYS}
    except InputFileError:
        raise
    except Exception as exc:  # a damaged file fails in many ways: zip, zlib, npy header, absurd sizes
        raise InputFileError(path, f"not a readable npz ({exc.__class__.__name__}: {exc})") from None


def _from_heatmaps(path: Path, arrays: dict[str, np.ndarray]) -> Evidence2D:
    from diffpose3d.data.keypoints import FAR_OUTSIDE, check_image_size
    from diffpose3d.skeleton import SKELETON_NAMES, get_skeleton
    from diffpose3d.evidence.heatmaps import heatmaps_to_gmm

    if arrays["heatmaps"].dtype.kind not in "biuf" or arrays["heatmap_to_image"].dtype.kind not in "iuf":
        raise InputFileError(path, "heatmaps and heatmap_to_image must be real-valued numeric arrays")
    with np.errstate(over="ignore"):  # too large for float32: inf, which counts as no evidence
        heatmaps = arrays["heatmaps"].astype(np.float32)
    affine = arrays["heatmap_to_image"].astype(np.float64)
    size = check_image_size(arrays["image_size"], path)
    layout = str(arrays["layout"])
    if heatmaps.ndim != 4 or affine.shape != (heatmaps.shape[0], 2, 3):
        raise InputFileError(path, "heatmaps must be (T, J, H, W) with heatmap_to_image (T, 2, 3)")
    if 0 in heatmaps.shape:
        raise InputFileError(path, f"heatmaps are empty: shape {heatmaps.shape}")
    h, w = heatmaps.shape[2:]
    if layout not in SKELETON_NAMES or get_skeleton(layout).num_joints != heatmaps.shape[1]:
        raise InputFileError(path, f"layout '{layout}' does not fit {heatmaps.shape[1]} heatmaps per frame")
    if not np.isfinite(affine).all():
        raise InputFileError(path, "heatmap_to_image holds NaN or inf")
    corners = np.array([[0, 0, 1], [w, 0, 1], [0, h, 1], [w, h, 1]], np.float64).T
    with np.errstate(over="ignore", invalid="ignore"):
        reach = np.abs(affine @ corners).max()
    if not reach <= FAR_OUTSIDE * max(size):
        raise InputFileError(path, f"heatmap_to_image maps the heatmaps more than {FAR_OUTSIDE} image sizes away")
    gmm = heatmaps_to_gmm(heatmaps, affine, size)
    mass = np.nan_to_num(heatmaps, nan=0.0, posinf=0.0, neginf=0.0).clip(min=0)  # as heatmaps_to_gmm counts it
    conf = np.clip(mass.reshape(*heatmaps.shape[:2], -1).sum(-1), 0, 1).astype(np.float32)
    return Evidence2D(path.stem, layout, size, gmm, conf, np.arange(len(heatmaps)), "heatmaps")
