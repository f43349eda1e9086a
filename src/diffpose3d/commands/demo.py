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

from diffpose3d.commands.predict import add_inference_arguments, inference_overrides

EXAMPLE_KEYPOINTS = "astronaut_keypoints.npz"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="diffpose3d-demo", help="output folder (default: ./diffpose3d-demo)")
    parser.add_argument("--checkpoint", default=None, help="model folder, or a bundled model: humaneva_frame (default), humaneva_video")
    parser.add_argument("--no-detector", action="store_true", help="use the bundled keypoints even if the detector is installed")
    add_inference_arguments(parser)


def bundled_example() -> Path:
    return Path(str(resources.files("diffpose3d") / "assets" / "examples" / EXAMPLE_KEYPOINTS))


def run(args: argparse.Namespace) -> int:
    from diffpose3d.inference.api import DiffPose
    from diffpose3d.inference.outputs import load_result_npz
    from diffpose3d.inference.predict import predict_path, summary

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    has_detector = importlib.util.find_spec("mediapipe") is not None
    if has_detector and not args.no_detector:
        from skimage import data

        from diffpose3d.viz.render import save_image

        source = save_image(out / "astronaut.png", data.astronaut())
        print(f"input: {source} (scikit-image's astronaut photograph; legs out of frame)")
    else:
        if not has_detector:
            print("the 2D detector is not installed (pip install 'diffpose3d[detect]'); "
                  "using the bundled keypoints it found on the astronaut photograph")
        source = bundled_example()
        print(f"input: {source}")
    model = DiffPose.load(args.checkpoint, device=args.device, **inference_overrides(args))
    written = predict_path(model, source, out, render=True, html=True, progress=False)
    print(summary(load_result_npz(written[0])))
    print("written:")
    for path in written:
        print(f"  {path.resolve()}")
    return 0
