"""`diffpose3d demo`: the whole pipeline on an embedded real photograph, with the bundled model.

The photograph is scikit-image's `astronaut` (Eileen Collins, NASA): a person seen from the waist
up, so the legs are out of frame and their 3D positions must come out uncertain. Without the
detector extra, the demo lifts the bundled keypoints the detector found on that photograph.
"""

from __future__ import annotations

import argparse
import importlib.util
from importlib import resources
from pathlib import Path

from diffpose3d.commands.predict import add_inference_arguments, check_steps, inference_overrides

EXAMPLE_KEYPOINTS = "astronaut_keypoints.npz"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="diffpose3d-demo", help="output folder (default: ./diffpose3d-demo)")
    parser.add_argument("--checkpoint", default=None, help="model folder, or a bundled model's name (default: h36m_frame)")
    parser.add_argument("--no-detector", action="store_true", help="use the bundled keypoints even if the detector is installed")
    parser.add_argument("--verbose", action="store_true", help="also show the detector's own log lines (MediaPipe, TFLite)")
    add_inference_arguments(parser)


def bundled_example() -> Path:
    return Path(str(resources.files("diffpose3d") / "assets" / "examples" / EXAMPLE_KEYPOINTS))


def run(args: argparse.Namespace) -> int:
    from diffpose3d.detect.quiet import set_verbose
    from diffpose3d.io.results import OutputFolder

    set_verbose(args.verbose)
    check_steps(args)
    with OutputFolder(args.out) as out:
        from diffpose3d.inference.api import DiffPose
        from diffpose3d.inference.predict import PredictSettings, predict_path, summary

        has_detector = importlib.util.find_spec("mediapipe") is not None
        if has_detector and not args.no_detector:
            from skimage import data

            from diffpose3d.viz.render import save_image

            source = save_image(out.path / "astronaut.png", data.astronaut())
            print(f"input: {source} (scikit-image's astronaut photograph; legs out of frame)")
        else:
            if not has_detector:
                print("the 2D detector is not installed (pip install 'diffpose3d[detect]'); "
                      "using the bundled keypoints it found on the astronaut photograph")
            source = bundled_example()
            print(f"input: {source}")
        model = DiffPose.load(args.checkpoint, device=args.device, **inference_overrides(args))
        reports = predict_path(model, source, out, PredictSettings(render=True, html=True), progress=False)
    for report in reports:
        print(report.summary())
        print(summary(report.result))
        print("written:")
        for path in report.files:
            print(f"  {path.resolve()}")
    return 0
