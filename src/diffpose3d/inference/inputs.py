"""Turn what a user points `predict` at into per-joint 2D evidence, for every person in it.

An input is an image, a folder of images, a video, a keypoints file (COCO-style JSON or npz) or a
heatmaps npz (formats: `docs/INPUTS.md`). Images and video frames go through a 2D detector (its
heatmaps when it has them, otherwise its keypoints + confidence), for everyone it finds; video
frames (and a `sequence` of photos) are tracked, so a person keeps their id. Evidence is a table
of rows, one per person per frame, sorted by frame then person. A person's rows run from the first
to the last frame they are found in; frames between without them get no evidence (every joint
missing, broad H_K). Video frames are streamed: only the per-row evidence is kept in memory.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from diffpose3d.errors import ConfigError, InputFileError
from diffpose3d.io.images import exif_focal, is_image, list_images, read_image, read_image_info
from diffpose3d.io.images import image_size as header_size
from diffpose3d.io.limits import InputWarning
from diffpose3d.io.video import VideoReader, is_video
from diffpose3d.mixtures.gmm import GaussianMixture

KEYPOINT_SUFFIXES = {".json", ".npz"}
HEATMAP_KEYS = ("heatmaps", "heatmap_to_image", "image_size", "layout")
NO_EVIDENCE = "holds no usable keypoints (every joint is NaN, out of range or of confidence 0)"
WORLD_JOINTS = 33  # the detector's own 3D landmarks (BlazePose)
MAX_CHECK_NOTES = 200  # one-body check notes kept in a result's meta (`source.body_checks`)


class NoPersonFound(InputFileError):
    """An image or video in which the detector found nobody (nothing to lift)."""

    def __init__(self, path: str | Path) -> None:
        super().__init__(path, "no person found")


@dataclass
class Evidence2D:
    """2D evidence in one layout, one row per person per frame (sorted by frame, then person)."""

    name: str
    layout: str
    image_size: tuple[int, int]
    gmm: GaussianMixture  # (R, J, M, 2) in normalised coordinates
    confidence: np.ndarray  # (R, J)
    frame_indices: np.ndarray  # (R,)
    kind: str  # image | images | video | keypoints | heatmaps
    person_ids: np.ndarray | None = None  # (R,); None: one person, id 0
    fps: float = 0.0
    frames: Callable[[], Iterator[np.ndarray]] | None = None  # re-reads the frames, for renders
    detector: dict = field(default_factory=dict)  # per-row extras: "world_3d" (R, 33, 3), "score" (R,)
    num_frames: int = 0  # frames in the input (some may hold nobody)
    source: dict = field(default_factory=dict)  # what the input was: path, EXIF orientation, ...

    def __post_init__(self) -> None:
        if self.person_ids is None:
            self.person_ids = np.zeros(len(self.frame_indices), np.int64)
        if not self.num_frames:
            self.num_frames = len(np.unique(self.frame_indices))

    def __len__(self) -> int:
        return len(self.frame_indices)

    @property
    def people(self) -> list[int]:
        return [int(p) for p in np.unique(self.person_ids)]

    def rows_of(self, person: int) -> np.ndarray:
        return np.flatnonzero(self.person_ids == person)

    def select(self, rows: np.ndarray) -> Evidence2D:
        rows = np.asarray(rows, dtype=np.int64)
        return replace(self, gmm=self.gmm[torch.as_tensor(rows)], confidence=self.confidence[rows],
                       frame_indices=self.frame_indices[rows],
                       person_ids=self.person_ids[rows], detector={k: v[rows] for k, v in self.detector.items()},
                       num_frames=self.num_frames)


def read_inputs(
    path: str | Path,
    detector_factory: Callable[[], object] | None = None,
    *,
    layout: str = "humaneva15",
    source_layout: str | None = None,
    image_size: tuple[int, int] | None = None,
    progress: bool = True,
    max_people: int = 10,
    sequence: bool = False,
) -> Iterator[Evidence2D]:
    """One `Evidence2D` per result: per photo of a folder (one for the whole folder with
    `sequence`), else one. `detector_factory` is called (once) only for images and videos. A photo
    of a folder in which nobody is found comes as a `NoPersonFound` (not raised); a single image
    or video without anybody raises it.

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
        if sequence:
            _same_size(images)
    elif path.suffix.lower() in KEYPOINT_SUFFIXES:
        yield _warned_if_read(_from_file, path, layout, source_layout, image_size)
        return
    elif not (is_image(path) or is_video(path)):
        raise InputFileError(path, "unsupported input (an image, a folder of images, a video, or a .json/.npz keypoints file)")
    if detector_factory is None:
        raise InputFileError(path, "images and videos need a 2D detector (pip install 'diffpose3d[detect]')")
    if int(max_people) < 1:
        raise ConfigError(f"max_people must be at least 1, got {max_people}")
    detector = detector_factory()
    try:
        if path.is_dir() and not sequence:
            for image in images:
                try:
                    yield _warned_if_read(_from_images, image, [image], _mode(detector, video=False), max_people, False, "image")
                except NoPersonFound as exc:
                    yield exc  # one photo of a folder without anybody: reported, the others go on
        elif path.is_dir():
            yield _warned_if_read(_from_images, path, images, _mode(detector, video=True), max_people, progress, "images")
        elif is_image(path):
            yield _warned_if_read(_from_images, path, [path], _mode(detector, video=False), max_people, False, "image")
        else:
            yield _warned_if_read(_from_video, path, _mode(detector, video=True), max_people, progress)
    finally:
        detector.close()


def _warned_if_read(read, *args) -> Evidence2D:
    """`read(*args)`, its warnings (clamped confidences, rescaled frames) passed on only when the
    input is read: a refused input's one line is all the user sees."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", InputWarning)
        evidence = read(*args)
    for w in caught:
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return evidence


def _mode(detector, video: bool):
    """The detector set to track (video, sequence) or to treat each image alone; returns it."""
    if hasattr(detector, "set_video_mode"):
        detector.set_video_mode(video)
    return detector


def read_input(path: str | Path, detector_factory: Callable[[], object] | None = None, **options) -> Evidence2D:
    """The evidence of one input (a folder is one sequence of its photos); see `read_inputs`."""
    if Path(path).is_dir():
        options["sequence"] = True
    return next(iter(read_inputs(path, detector_factory, **options)))


def _same_size(images: list[Path]) -> None:
    """A sequence's frames share one size; checked from the headers, before any detection."""
    first = header_size(images[0])
    for p in images[1:]:
        if header_size(p) != first:
            raise InputFileError(p, f"is {'x'.join(map(str, header_size(p)))}, the sequence's first image "
                                 f"{images[0].name} {first[0]}x{first[1]}: a sequence needs one size")


def _rows_from_stream(stream, layout: str, track: bool, progress: bool, total: int | None) -> dict:
    """Detect everyone in every frame -> evidence rows (a tracked person's gaps filled)."""
    from tqdm.auto import tqdm

    from diffpose3d.evidence.detection import detection_evidence
    from diffpose3d.skeleton import get_skeleton

    joints = get_skeleton(layout).num_joints
    rows: list[tuple] = []
    sizes: set[tuple[int, int]] = set()
    frames = 0
    checks: list[dict] = []
    for fp in tqdm(stream, total=total, desc="detecting", disable=not progress, unit="frame"):
        frames += 1
        sizes.add(fp.image_size)
        if len(checks) < MAX_CHECK_NOTES:
            checks += [{"frame": fp.index, "refused": line} for line in fp.refused]
            checks += [{"frame": fp.index, "person": pid, "note": note} for pid, det in fp.people for note in det.notes]
        for pid, det in fp.people:
            gmm, conf = detection_evidence(det, fp.image_size, joints)
            world = det.world_landmarks if det.world_landmarks is not None else np.full((WORLD_JOINTS, 3), np.nan)
            rows.append((fp.index, pid, gmm, conf, world.astype(np.float32), float(det.score)))
    if track:
        rows += _gap_rows(rows, next(iter(sizes), (1, 1)), joints)
    rows.sort(key=lambda r: (r[0], r[1]))
    return {"rows": rows, "sizes": sizes, "frames": frames, "checks": checks[:MAX_CHECK_NOTES]}


def _gap_rows(rows: list, size: tuple[int, int], joints: int) -> list:
    """Rows without evidence for the frames inside a tracked person's span where they were not found."""
    from diffpose3d.evidence.detection import detection_evidence

    seen: dict[int, set[int]] = {}
    for frame, pid, *_ in rows:
        seen.setdefault(pid, set()).add(frame)
    gmm, conf = detection_evidence(None, size, joints)
    blank = np.full((WORLD_JOINTS, 3), np.nan, np.float32)
    return [(f, pid, gmm, conf, blank, 0.0) for pid, frames in seen.items()
            for f in range(min(frames), max(frames) + 1) if f not in frames]


def _evidence(name: str, layout: str, size: tuple[int, int], table: dict, kind: str, **extra) -> Evidence2D:
    from diffpose3d.evidence.mixture2d import stack_mixtures

    rows = table["rows"]
    if not rows:
        raise NoPersonFound(extra["source"]["path"])
    return Evidence2D(
        name=name, layout=layout, image_size=size, gmm=stack_mixtures([r[2] for r in rows]),
        confidence=np.concatenate([r[3] for r in rows]), frame_indices=np.array([r[0] for r in rows]),
        kind=kind, person_ids=np.array([r[1] for r in rows], np.int64), num_frames=table["frames"],
        detector={"world_3d": np.stack([r[4] for r in rows]), "score": np.array([r[5] for r in rows], np.float32)},
        **extra,
    )


def _from_images(path: Path, images: list[Path], detector, max_people: int, progress: bool, kind: str) -> Evidence2D:
    from diffpose3d.detect.stream import detect_stream

    info: dict = {}
    if len(images) == 1:  # one photo: kept decoded for the render
        image, info = read_image_info(images[0])
        frames = lambda: iter([image])
    else:
        frames = lambda: (read_image(p) for p in images)
    table = _rows_from_stream(detect_stream(frames(), detector, max_people=max_people, track=len(images) > 1),
                              detector.layout, len(images) > 1, progress, len(images))
    source = {"path": str(path), **info, **_checks(table)}
    if kind == "images":
        source["frame_names"] = [p.name for p in images]
        source.update(exif_focal(images[0]))  # a sequence's frames come from one camera
    size = next(iter(table["sizes"]))
    return _evidence(path.stem, detector.layout, size, table, kind,
                     frames=frames, source=source)


def _from_video(path: Path, detector, max_people: int, progress: bool) -> Evidence2D:
    from diffpose3d.detect.stream import detect_stream

    with VideoReader(path) as reader:
        fps, size = reader.fps, (reader.width, reader.height)
        table = _rows_from_stream(detect_stream(iter(reader), detector, max_people=max_people, track=True),
                                  detector.layout, True, progress, reader.num_frames or None)
        rescaled = reader.rescaled_frames
    if rescaled:
        warnings.warn(InputWarning(path, f"{rescaled} frame(s) of another resolution rescaled to {size[0]}x{size[1]}"),
                      stacklevel=2)

    def frames() -> Iterator[np.ndarray]:
        with VideoReader(path) as again:
            yield from again

    return _evidence(path.stem, detector.layout, size, table, "video", fps=fps, frames=frames,
                     source={"path": str(path), "fps": fps, "rescaled_frames": rescaled, **_checks(table)})


def _checks(table: dict) -> dict:
    """What the one-body checks dropped or refused, for the result's meta (nothing when none)."""
    return {"body_checks": table["checks"]} if table.get("checks") else {}


def _from_file(path: Path, layout: str, source_layout: str | None, image_size: tuple[int, int] | None) -> Evidence2D:
    """A heatmaps npz (keys heatmaps, heatmap_to_image, image_size, layout) or a keypoints file."""
    from diffpose3d.data.keypoints import load_keypoint_people
    from diffpose3d.evidence.mixture2d import keypoints_to_gmm

    if path.suffix.lower() == ".npz":
        arrays = _load_heatmap_arrays(path)
        if arrays is not None:
            return _from_heatmaps(path, arrays)
    people, names = load_keypoint_people(path, layout=layout, image_size=image_size, src_layout=source_layout)
    if not people:
        raise InputFileError(path, NO_EVIDENCE)
    size = tuple(people[0][1].image_size)
    conf = np.concatenate([np.nan_to_num(seq.confidence, nan=0.0) for _, seq in people]).astype(np.float32)
    kp = np.concatenate([np.nan_to_num(seq.keypoints_2d) for _, seq in people]).astype(np.float32)
    frames = np.concatenate([seq.frame_indices for _, seq in people]).astype(np.int64)
    pids = np.concatenate([np.full(len(seq), pid) for pid, seq in people]).astype(np.int64)
    order = np.lexsort((pids, frames))
    gmm = keypoints_to_gmm(kp, conf, size)[torch.as_tensor(order)]
    span = int(frames.max() - frames.min() + 1) if names is None else len(names)
    source = {"path": str(path)} if names is None else {"path": str(path), "frame_names": names}
    return Evidence2D(path.stem, layout, size, gmm, conf[order], frames[order], "keypoints",
                      person_ids=pids[order], num_frames=span, source=source)


def _load_heatmap_arrays(path: Path) -> dict[str, np.ndarray] | None:
    """The arrays of a heatmaps npz, or None when the npz holds no `heatmaps` (a keypoints file)."""
    from diffpose3d.io.arrays import load_npz

    arrays = load_npz(path)
    if "heatmaps" not in arrays:
        return None
    missing = [k for k in HEATMAP_KEYS if k not in arrays]
    if missing:
        raise InputFileError(path, f"a heatmaps npz also needs {', '.join(missing)}")
    return {k: arrays[k] for k in HEATMAP_KEYS}


def _from_heatmaps(path: Path, arrays: dict[str, np.ndarray]) -> Evidence2D:
    from diffpose3d.data.keypoints import FAR_OUTSIDE, check_image_size
    from diffpose3d.evidence.heatmaps import heatmaps_to_gmm
    from diffpose3d.skeleton import SKELETON_NAMES, get_skeleton

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
    mass = np.nan_to_num(heatmaps, nan=0.0, posinf=0.0, neginf=0.0).clip(min=0)  # as heatmaps_to_gmm counts it
    conf = np.clip(mass.reshape(*heatmaps.shape[:2], -1).sum(-1), 0, 1).astype(np.float32)
    if not (conf > 0).any():
        raise InputFileError(path, "holds no usable heatmaps (every map is zero, negative or NaN)")
    gmm = heatmaps_to_gmm(heatmaps, affine, size)
    return Evidence2D(path.stem, layout, size, gmm, conf, np.arange(len(heatmaps)), "heatmaps",
                      source={"path": str(path)})


def select_people(evidence: Evidence2D, person: str | int) -> Evidence2D:
    """`person`: "all", "largest" (the person with the largest median 2D size), or an id."""
    if person in ("all", None):
        return evidence
    if person == "largest":
        from diffpose3d.cameras import image_coordinates
        from diffpose3d.detect.people import person_box, person_size
        from diffpose3d.evidence.mixture2d import top_mode

        # in pixels: person_size clamps to at least one pixel, which normalised sizes all are below
        px = image_coordinates(top_mode(evidence.gmm).numpy(), *evidence.image_size)
        size = np.array([person_size(person_box(px[r], evidence.confidence[r])) for r in range(len(evidence))])
        person = max(evidence.people, key=lambda p: float(np.median(size[evidence.rows_of(p)])))
    person = int(person)
    if person not in evidence.people:
        found = ", ".join(map(str, evidence.people))
        raise InputFileError(evidence.source.get("path", evidence.name), f"no person {person} (found: {found})")
    return evidence.select(evidence.rows_of(person))
