"""Exports a 3D tool can open: BVH (one file per person) and glTF 2.0 binary (one GLB per result,
a skeleton per person), from a result's poses placed in the scene (`result.root`)."""
