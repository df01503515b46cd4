"""Where a live stream looks for faces: around the faces of its last frame first, and over the whole frame at
intervals or when a face is lost.

Searching a whole frame for faces down to 40 px costs the detector's finest pass over all of it; a face
in a stream moves little from one result to the next. So each frame is searched in a square around each face
of the last one, scaled so that the face is REGION_FACE_WIDTH px wide: one small pass whatever the frame's size,
and a small face in a large frame is seen larger than by the whole-frame search. The whole frame is searched
every `full_search_every` frames (to find people who come into view) and at once when a face followed is not
found in its region (it moved too far, or left). While nobody is in view, the frames between those searches get
only the detector's quick look (`deep=False`: faces near the camera): the search down to the smallest faces
costs about ten times that look at 1280x720, and would otherwise run on every frame of an empty room. The
detector's whole-frame search ends at the first pass that finds a face, so someone near the camera would hide
people further away from every one of them: every `everyone_search_every` frames (and on the first) the finer
passes run too, for other faces (several times the cost of a search that ends early, so only about every five
seconds); people it finds are followed region by region from then on. A single image (Fuse) is always
searched whole, ending at the first pass with a face.

A face found in its region where it was (overlapping its last box) is the face the detector confirmed before,
so the detector's second check (BlazeFace's FaceMesh presence score, which costs twice its pass) is skipped
for it; a box elsewhere in the region is confirmed, and every whole-frame search confirms every face again.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from fusion_service.features.faces.boxes import Box
from fusion_service.features.faces.gray import to_gray
from fusion_service.features.faces.pipeline import FacePipeline, detector_input
from fusion_service.features.faces.region import search_region

REGION_SIDE = 3.0  # the square searched around a face, in face widths: room for a move of a face width
REGION_FACE_WIDTH = 40  # px: the face's width in the region given to the detector, well above its smallest
FULL_SEARCH_EVERY = 5  # frames: about once a second at the default 5 results a second
EVERYONE_SEARCH_EVERY = 25  # frames: about every 5 s, the finer passes too (people further away than the near one)
MAX_FOLLOWED = 4  # faces followed region by region; more people than this get a whole-frame search every frame
SAME_FACE_IOU = 0.5  # two regions' boxes overlapping this much are one face
# A box overlapping the face's last box this much is that face moved on (as fusion_service.face_tracking says).
MOVED_ON_IOU = 0.3


class StreamFaceSearch:
    """FacePipeline.faces for the frames of one stream, in order (not safe to share between streams)."""

    def __init__(self, pipeline: FacePipeline, full_search_every: int = FULL_SEARCH_EVERY,
                 everyone_search_every: int = EVERYONE_SEARCH_EVERY) -> None:
        intervals = {"full_search_every": full_search_every, "everyone_search_every": everyone_search_every}
        for name, frames in intervals.items():
            if frames < 1:
                raise ValueError(f"{name} must be at least 1 frame, got {frames}")
        self._pipeline = pipeline
        self.full_search_every = full_search_every
        self.everyone_search_every = everyone_search_every
        self._followed: list[Box] = []
        self._since_full_search = 0
        self._since_everyone_search = 0
        self.full_searches = 0  # frames searched whole, for tests and metrics
        self.everyone_searches = 0  # of those, searched at every scale

    def faces(self, image: np.ndarray) -> tuple[list[Box], np.ndarray]:
        """Boxes (largest first) and crops [N, 48, 48, 1] of the faces in this frame of the stream."""
        gray = to_gray(image)
        colour = detector_input(image, gray)
        boxes = None
        everyone = self.everyone_searches == 0 or self._since_everyone_search + 1 >= self.everyone_search_every
        due = everyone or self._since_full_search + 1 >= self.full_search_every
        if self._followed and len(self._followed) <= MAX_FOLLOWED and not due:
            boxes = self._around_followed(colour)
            if len(boxes) < len(self._followed):
                boxes = None  # a face was lost: look everywhere
        elif not self._followed and not due:
            boxes = self._pipeline.detector.detect(colour, deep=False)  # nobody in view: only someone near
        if boxes is None:
            boxes = self._pipeline.detector.detect(colour, everyone=everyone)
            self._since_full_search = 0
            self.full_searches += 1
        else:
            self._since_full_search += 1
        if everyone:
            self._since_everyone_search = 0
            self.everyone_searches += 1
        else:
            self._since_everyone_search += 1
        self._followed = boxes
        return self._pipeline.crops(gray, boxes)

    def _around_followed(self, image: np.ndarray) -> list[Box]:
        """The followed faces found again, each in its region: one box a face."""
        found: list[Box] = []
        for face in self._followed:
            box = self._moved_on(image, face)
            if box is not None and all(box.overlap(other) < SAME_FACE_IOU for other in found):
                found.append(box)
        return sorted(found, key=lambda box: box.area, reverse=True)

    def _moved_on(self, image: np.ndarray, face: Box) -> Box | None:
        """Where `face` is now: the box nearest to it in its region, confirmed unless it overlaps where it was."""
        detect = self._pipeline.detector.detect
        nearest = _nearest(face, self._in_region(lambda region: detect(region, confirm=False), image, face))
        if nearest is None or nearest.overlap(face) >= MOVED_ON_IOU:
            return nearest
        return _nearest(face, self._in_region(detect, image, face))

    @staticmethod
    def _in_region(detect: Callable[[np.ndarray], list[Box]], image: np.ndarray, face: Box) -> list[Box]:
        return search_region(detect, image, face, side=REGION_SIDE, face_width=REGION_FACE_WIDTH)


def _nearest(face: Box, boxes: list[Box]) -> Box | None:
    """The box whose centre is nearest to the face's, if any."""
    def distance(box: Box) -> float:
        return float(np.hypot(box.x + box.width / 2 - face.x - face.width / 2,
                              box.y + box.height / 2 - face.y - face.height / 2))
    return min(boxes, key=distance, default=None)
