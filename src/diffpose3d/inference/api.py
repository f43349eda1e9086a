"""The high-level API: load a model, lift 2D evidence of any kind to 3D poses with uncertainty.

    from diffpose3d import DiffPose
    model = DiffPose.load()                      # the default bundled model
    result = model.from_keypoints(kp, confidence, image_size=(640, 480), layout="coco17")
    result.pose_3d, result.hypotheses, result.uncertainty

`from_evidence` lifts every person of an image, video or file (`inference.inputs.read_input`); a
result holds one row per person per frame (`result.person_ids`, `result.person(id)`).

Joints without evidence (confidence 0 or NaN; in a detector's result also a joint outside the image)
get a broad (u, v) component in H_K and are flagged in `result.missing`; the context encoder sees
them at their parent's position.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch

from diffpose3d.bundle import load_bundle, resolve_device
from diffpose3d.cameras import image_coordinates, inside_image
from diffpose3d.config import InferenceConfig
from diffpose3d.data.gmm_files import decode_gmm
from diffpose3d.errors import ConfigError, InputFileError
from diffpose3d.evidence.mixture2d import broad_mixture, fill_missing, map_gmm, mixture_to_uv, top_mode
from diffpose3d.inference.lifting import lift_batches
from diffpose3d.inference.result import PoseResult, concat_results
from diffpose3d.mixtures.gmm import GaussianMixture
from diffpose3d.scene.intrinsics import Intrinsics, camera_for
from diffpose3d.scene.trajectory import add_trajectory

DETECTED_KINDS = ("image", "images", "video")  # evidence from the 2D detector (not a keypoints file)


class DiffPose:
    """A loaded model plus its inference settings."""

    def __init__(self, model, info: dict | None = None, inference: InferenceConfig | None = None) -> None:
        self.model = model
        self.info = info or {}
        self.inference = inference or replace(model.config.inference)

    @classmethod
    def load(cls, checkpoint: str | None = None, device: str = "auto", **inference) -> DiffPose:
        from diffpose3d.config_ranges import check_config

        model, info = load_bundle(checkpoint, device=resolve_device(device))
        cfg = replace(model.config.inference, **inference)
        check_config(replace(model.config, inference=cfg))  # N, steps, seed, ... in their ranges
        return cls(model, info, cfg)

    @property
    def layout(self) -> str:
        return self.model.skeleton.name

    @property
    def joint_names(self) -> list[str]:
        return list(self.model.skeleton.joint_names)

    # -- inputs -------------------------------------------------------------------------------
    def from_keypoints(
        self,
        keypoints: np.ndarray,
        confidence: np.ndarray | None = None,
        *,
        image_size: tuple[int, int],
        layout: str | None = None,
        focal: float | None = None,
    ) -> PoseResult:
        """Keypoints (T, J, 2) or (T, J, 3 with confidence) in pixels of an image of `image_size`;
        `focal`: the camera's focal length in pixels (default: `scene.intrinsics.DEFAULT_FOV_DEG`),
        for the root positions (`result.root`) and told to the model."""
        from diffpose3d.data.keypoints import drop_far_outside
        from diffpose3d.evidence.mixture2d import keypoints_to_gmm

        with np.errstate(over="ignore"):  # too large for float32: inf, then missing
            keypoints = np.asarray(keypoints, dtype=np.float32)
        if keypoints.ndim == 2:
            keypoints = keypoints[None]
        layout = self._check_layout(keypoints, layout)
        if keypoints.shape[-1] == 3 and confidence is None:
            confidence = keypoints[..., 2]
        keypoints = keypoints[..., :2]
        if confidence is None:
            confidence = np.ones(keypoints.shape[:2], np.float32)
        keypoints = drop_far_outside(keypoints, image_size)  # then missing, as NaN / inf joints are
        confidence = np.where(np.isfinite(keypoints).all(-1), np.nan_to_num(confidence, nan=0.0), 0.0)
        gmm = keypoints_to_gmm(np.nan_to_num(keypoints), confidence.astype(np.float32), image_size)
        return self._lift_gmm(gmm, confidence, image_size, layout, camera=camera_for(image_size, focal))

    def _check_layout(self, keypoints: np.ndarray, layout: str | None) -> str:
        """The keypoints' layout (default: the model's), checked against their (T, J, 2|3) shape."""
        from diffpose3d.skeleton import SKELETON_NAMES, get_skeleton

        layout = layout or self.layout
        if layout not in SKELETON_NAMES:
            raise ConfigError(f"unknown layout '{layout}' (known: {', '.join(SKELETON_NAMES)})")
        joints = get_skeleton(layout).num_joints
        if keypoints.ndim != 3 or keypoints.shape[1] != joints or keypoints.shape[2] not in (2, 3):
            raise ConfigError(f"keypoints of shape {tuple(keypoints.shape)} do not fit layout '{layout}': "
                              f"expected (T, {joints}, 2) or (T, {joints}, 3); pass layout= for another layout")
        return layout

    def from_gmm(self, gmm_2d: np.ndarray, *, image_size: tuple[int, int], layout: str | None = None,
                 focal: float | None = None) -> PoseResult:
        """The authors' per-joint mixtures (T, J, K, 5) = [weight, mean u, mean v, var u, var v] in pixels."""
        w, h = image_size
        gmm = mixture_to_uv(decode_gmm(gmm_2d), w, h)
        confidence = np.ones(gmm.weights.shape[:2], np.float32)
        return self._lift_gmm(gmm, confidence, image_size, layout or self.layout, camera=camera_for(image_size, focal))

    def from_heatmaps(
        self,
        heatmaps: np.ndarray,
        heatmap_to_image: np.ndarray,
        *,
        image_size: tuple[int, int],
        layout: str | None = None,
        focal: float | None = None,
    ) -> PoseResult:
        """Per-joint heatmaps (T, J, H, W) with their (T, 2, 3) heatmap-to-image affine transforms."""
        from diffpose3d.evidence.heatmaps import heatmaps_to_gmm

        gmm = heatmaps_to_gmm(heatmaps, heatmap_to_image, image_size)
        mass = np.asarray(heatmaps, dtype=np.float64).reshape(*heatmaps.shape[:2], -1).max(-1)
        confidence = np.clip(mass / max(float(mass.max()), 1e-12), 0.0, 1.0).astype(np.float32)
        return self._lift_gmm(gmm, confidence, image_size, layout or self.layout, camera=camera_for(image_size, focal))

    # -- the lifting itself ---------------------------------------------------------------------
    def from_evidence(self, evidence, focal: float | None = None) -> PoseResult:
        """An `inference.inputs.Evidence2D` (what `read_input` makes of an image, video or file):
        every person in it, each lifted as a sequence of their own, in one result (rows sorted by
        frame, then person; `result.person(id)` is one person's). Each row gets a root position
        (`result.root`) with the camera of `focal` pixels, else the photo's EXIF focal length,
        else the default field of view; a person's roots are smoothed over the frames."""
        if not evidence.people:
            raise InputFileError(evidence.source.get("path", evidence.name), "no person found")
        camera = camera_for(evidence.image_size, focal, evidence.source.get("exif_focal_px"),
                            evidence.source.get("exif_focal_source", "exif"))
        parts = []
        for person in evidence.people:
            rows = evidence.rows_of(person)
            part = self._lift_gmm(evidence.gmm[torch.as_tensor(rows)], evidence.confidence[rows], evidence.image_size,
                                  evidence.layout, evidence.frame_indices[rows],
                                  border=evidence.kind in DETECTED_KINDS, camera=camera, fps=evidence.fps)
            part.person_ids = np.full(len(rows), person, np.int64)
            if "world_3d" in evidence.detector:
                part.detector_world_3d = evidence.detector["world_3d"][rows]
                part.detector_score = evidence.detector["score"][rows]
            parts.append(part)
        result = concat_results(parts)
        result.meta.update({"input": evidence.name, "input_kind": evidence.kind, "input_layout": evidence.layout,
                            "num_input_frames": int(evidence.num_frames), "source": evidence.source})
        return result

    def _lift_gmm(
        self, gmm: GaussianMixture, confidence: np.ndarray, image_size, layout: str, frame_indices: np.ndarray | None = None,
        border: bool = False, camera: Intrinsics | None = None, fps: float | None = None,
    ) -> PoseResult:
        """gmm: (T, J_layout, M, 2) in normalised coordinates. With `border` (a detector's result) a
        model joint whose 2D lies outside the image gets no evidence, as in training: the landmark
        model extrapolates such joints, and their 3D must come from the rest of the body. The
        result's roots are fitted with `camera` (default: the default field of view)."""
        from diffpose3d.skeleton import map_keypoints

        w, h = image_size
        m = self.model.config.model.diffusion.num_components
        gmm = map_gmm(gmm, layout, self.layout, h / w, max_components=min(m, gmm.weights.shape[-1]) or 1)
        padded = np.concatenate([np.zeros(confidence.shape + (2,)), confidence[..., None]], -1)
        conf = map_keypoints(padded, layout, self.layout)[..., 2]
        conf = np.nan_to_num(conf, nan=0.0).astype(np.float32)
        keypoints_uv = top_mode(gmm)
        if border:
            outside = ~inside_image(keypoints_uv, torch.full((len(conf),), h / w)).numpy()
            conf = np.where(outside, 0.0, conf).astype(np.float32)
            gmm = gmm.where(torch.as_tensor(outside), broad_mixture(tuple(conf.shape), h / w, gmm.weights.shape[-1]))
        missing = conf <= 0.0
        keypoints_uv = fill_missing(keypoints_uv, torch.as_tensor(missing), self.model.skeleton.parents)
        camera = camera or camera_for((w, h))
        result = self.lift(keypoints_uv, gmm, image_size=(w, h), confidence=conf, missing=missing,
                           frame_indices=frame_indices, focal=camera.focal_px, layout=layout)
        return add_trajectory(result, camera, fps or None)

    def lift(
        self,
        keypoints_uv: torch.Tensor,
        uv_gmm: GaussianMixture,
        *,
        image_size: tuple[int, int],
        confidence: np.ndarray | None = None,
        missing: np.ndarray | None = None,
        frame_indices: np.ndarray | None = None,
        focal: float | None = None,
        layout: str | None = None,
    ) -> PoseResult:
        """Lift (T, J, 2) normalised keypoints with their (T, J, M, 2) mixtures (root-relative; no
        root: `scene.trajectory.add_trajectory`). `focal`: the camera's, pixels (None: the guess);
        `layout`: the 2D's own joint layout (`inference.lifting.lift_batches`)."""
        w, h = image_size
        told = None if focal is None else torch.full((keypoints_uv.shape[0],), 2.0 * float(focal) / w)
        pred = lift_batches(self.model, keypoints_uv, uv_gmm, self.inference, image_size=(w, h), focal=told, layout=layout)
        t, j = keypoints_uv.shape[:2]
        return PoseResult(
            joint_names=self.joint_names,
            parents=list(self.model.skeleton.parents),
            pose_3d=pred.pose,
            hypotheses=pred.hypotheses,
            covariance=pred.covariance,
            uncertainty=pred.spread,
            keypoints_2d=image_coordinates(keypoints_uv.cpu().numpy(), w, h).astype(np.float32),
            confidence=np.ones((t, j), np.float32) if confidence is None else confidence,
            missing=np.zeros((t, j), bool) if missing is None else missing,
            lifter_3d=pred.lifter,
            image_size=(int(w), int(h)),
            frame_indices=np.arange(t) if frame_indices is None else frame_indices,
            meta=self._meta(),
            out_of_domain=pred.out_of_domain,
            reprojection_miss=pred.reprojection_miss,
        )

    def _meta(self) -> dict:
        meta = {"model": self.model.config.name, "layout": self.layout, "inference": vars(self.inference).copy()}
        ood = getattr(self.model, "out_of_domain", None)
        if ood is not None:
            meta["out_of_domain_warn_at"] = round(float(ood.warn_at), 4)
        return meta
