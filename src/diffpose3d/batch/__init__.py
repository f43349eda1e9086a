"""`diffpose3d batch`: `predict` over many inputs on Ray Data, resumable, one record per input.

- `inputs`: what the user named (files, folders, lists of paths) -> the inputs, and each one's
  result name in the output folder (the names `predict` gives a folder's photos);
- `resume`: which inputs already have their complete result there (skipped);
- `worker`: a Ray actor's work (the model and the detector loaded once, `predict_one` per input,
  every failure caught as the input's record);
- `pipeline`: the Ray Data run (embedded Ray, or a cluster's), its progress and its summary;
- `records`: the per-input records and the summary files (JSON and CSV).

Only `pipeline` imports Ray (the `batch` extra).
"""
