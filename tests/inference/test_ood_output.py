"""The out_of_domain score in a prediction: npz and JSON (schema-valid), and predict's warning."""

from __future__ import annotations

import json

import numpy as np

from diffpose3d.inference.outputs import load_result_npz, prediction_schema, write_result
from diffpose3d.inference.predict import ood_warning
from diffpose3d.inference.result import PoseResult
from diffpose3d.viz.result_views import ood_note


def _result(scores: list[float] | None) -> PoseResult:
    r, j = 3, 15
    rng = np.random.default_rng(0)
    hyps = rng.normal(scale=0.1, size=(r, 2, j, 3)).astype(np.float32)
    meta = {"model": "t", "layout": "humaneva15"}
    if scores is not None:
        meta["out_of_domain_warn_at"] = 1.5
    return PoseResult([f"j{i}" for i in range(j)], [-1] + [0] * (j - 1), hyps.mean(1), hyps,
                      np.zeros((r, j, 3, 3), np.float32), np.full((r, j), 0.02, np.float32),
                      np.zeros((r, j, 2), np.float32), np.ones((r, j), np.float32), np.zeros((r, j), bool),
                      hyps.mean(1), (640, 480), np.arange(r), meta,
                      out_of_domain=None if scores is None else np.array(scores, np.float32))


def test_score_round_trips_through_npz_and_json(tmp_path):
    import jsonschema

    npz, js = write_result(_result([0.2, float("nan"), 3.0]), tmp_path, "clip")
    back = load_result_npz(npz)
    np.testing.assert_allclose(back.out_of_domain, [0.2, np.nan, 3.0])
    doc = json.loads(js.read_text())
    jsonschema.validate(doc, prediction_schema())
    people = [f["people"][0] for f in doc["frames"]]
    assert [p["out_of_domain"] for p in people] == [0.2, None, 3.0]
    _, js2 = write_result(_result(None), tmp_path, "old")
    assert "out_of_domain" not in json.loads(js2.read_text())["frames"][0]["people"][0]


def test_warning_only_above_the_bundles_level():
    assert ood_warning(_result([0.2, 1.0, 0.3])) == "" and ood_warning(_result(None)) == ""
    line = ood_warning(_result([0.2, 2.0, 3.0]))
    assert "2 of 3 poses" in line and "3.0" in line and "\n" not in line
    assert "UNUSUAL" in ood_note(_result([0.2, 2.0, 3.0]), np.array([2]))
    assert ood_note(_result([0.2, 2.0, 3.0]), np.array([0])) == "  out-of-domain 0.2"
