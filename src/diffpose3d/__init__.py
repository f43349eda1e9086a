"""diffpose3d: DiffPose 3D human pose estimation with calibrated uncertainty."""

__version__ = "0.1.0"
