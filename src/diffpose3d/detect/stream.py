"""A detector over a stream of frames: everyone in each frame, with a person id.

Frames of one video (or of a `--sequence` of photos) are tracked (`people.PersonTracker`); a
single photo's people are numbered 0, 1, ... by the detector's confidence.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import numpy as np

from diffpose3d.detect.base import Detection, detect_people
from diffpose3d.detect.people import PersonTracker


@dataclass
class FramePeople:
    """The people of frame `index` (an image of `image_size` (w, h)), as (person id, Detection),
    and the skeletons the detector refused there (one line each, `detect.plausibility`)."""

    index: int
    image_size: tuple[int, int]
    people: list[tuple[int, Detection]]
    refused: list[str] = field(default_factory=list)


def detect_stream(frames: Iterable[np.ndarray], detector, *, max_people: int, track: bool) -> Iterator[FramePeople]:
    """Detect everyone in every frame; `track` keeps each person's id over the frames."""
    tracker = PersonTracker() if track else None
    for t, image in enumerate(frames):
        found = detect_people(detector, image, max_people)
        if tracker is not None:
            ids = tracker.update(t, [d.keypoints for d in found], [d.confidence for d in found])
        else:
            ids = list(range(len(found)))
        size = (int(image.shape[1]), int(image.shape[0]))
        refused = list(getattr(detector, "last_refused", []))
        yield FramePeople(t, size, sorted(zip(ids, found), key=lambda pd: pd[0]), refused)
