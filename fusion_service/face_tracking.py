"""Which face a live stream's answer is about: the face it was about before, while that face stays in view.

Detectors list faces largest first, and two people at about the same distance swap places in that order from
one frame to the next; an answer that jumps between two people is no answer. A stream therefore follows its
main face by how much each new box overlaps the last main face, and takes the largest face only when none
continues it. A single Fuse call has no history: its main face is the largest.
"""

from __future__ import annotations

from typing import Sequence

from fusion_service.features.face import Box

# A box overlapping the last main face by at least this intersection-over-union continues it. At 5 results a
# second a face moving at walking pace across a webcam's view keeps an overlap well above this, and two
# different people overlap this much only when one hides the other.
MIN_OVERLAP = 0.3


def overlap(a: Box, b: Box) -> float:
    """Intersection over union of two boxes: 0 apart, 1 identical."""
    width = min(a.x + a.width, b.x + b.width) - max(a.x, b.x)
    height = min(a.y + a.height, b.y + b.height) - max(a.y, b.y)
    if width <= 0 or height <= 0:
        return 0.0
    shared = width * height
    return shared / (a.area + b.area - shared)


def main_face(boxes: Sequence[Box], followed: Box | None = None) -> int:
    """Index of the face the answer is about: the box that best continues `followed`, else the largest.

    `boxes` must be non-empty and, as detectors return them, largest first."""
    if not boxes:
        raise ValueError("main_face needs at least one box")
    if followed is not None:
        overlaps = [overlap(box, followed) for box in boxes]
        best = max(range(len(boxes)), key=overlaps.__getitem__)
        if overlaps[best] >= MIN_OVERLAP:
            return best
    return 0
