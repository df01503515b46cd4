"""Which face a live stream's answer is about: the face it was about before, while that face stays in view.

Detectors list faces largest first, and two people at about the same distance swap places in that order from
one frame to the next; an answer that jumps between two people is no answer. A stream therefore follows its
main face by how much each new box overlaps the last main face, and takes the largest face only when none
continues it. A single Fuse call has no history: its main face is the largest.
"""

from __future__ import annotations

from typing import Sequence

from fusion_service.features.faces.boxes import Box

# A box overlapping the last main face by at least this intersection-over-union continues it. At 5 results a
# second a face moving at walking pace across a webcam's view keeps an overlap well above this, and two
# different people overlap this much only when one hides the other.
MIN_OVERLAP = 0.3


def main_face(boxes: Sequence[Box], followed: Box | None = None) -> int:
    """Index of the face the answer is about: the box that best continues `followed`, else the largest.

    `boxes` must be non-empty and, as detectors return them, largest first."""
    if not boxes:
        raise ValueError("main_face needs at least one box")
    if followed is not None:
        best = max(range(len(boxes)), key=lambda index: boxes[index].overlap(followed))
        if continues(boxes[best], followed):
            return best
    return 0


def continues(box: Box, followed: Box) -> bool:
    """Whether `box` is the face `followed` was: when not, the stream's answer is about someone else now."""
    return box.overlap(followed) >= MIN_OVERLAP
