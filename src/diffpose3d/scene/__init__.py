"""Where people are in the scene: camera intrinsics, the root translation fitted to the 2D, its smoothing."""
