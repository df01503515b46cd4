"""A stream frame that repeats the last one: the same image has the same faces, so it is not decoded or searched
again.

Clients send the same image again when their camera delivers fewer frames than they send, for a still picture or
a screen share, and a benchmark does. Only the faces of a frame searched whole are kept: a stream's search
around its last faces may miss someone who came into view, which the next whole-frame search would find, while a
whole-frame search of the same pixels finds the same faces again (the face networks are deterministic). A
stream's search for everyone (features/faces/search.py) finds people further away that its other whole-frame
searches leave out; a repeated frame keeps what its own search found, so a still picture last searched without
that look keeps only the faces it found until the picture changes and the stream's searches go on. The video
model's answer for those faces is kept for OUTCOME_KEPT_S: it would answer the same faces the same way, but an
outage of its server or a new model version must show in a stream of repeated frames as soon as in any other.
"""

from __future__ import annotations

from dataclasses import dataclass

from fusion_service.analysis import Faces, Outcome
from protos.emotion.v1 import emotion_pb2 as pb

OUTCOME_KEPT_S = 1.0  # five results at the default rate; the health checks look every 2 s


@dataclass
class SeenFrame:
    """The last frame a stream searched whole, its faces, and the video outcome it had at `outcome_at`."""

    image: pb.Image
    faces: Faces
    outcome: Outcome
    outcome_at: float  # event-loop time

    def shows(self, image: pb.Image) -> bool:
        """Whether `image` is this frame's image, byte for byte (and of the same format and size)."""
        return image == self.image

    def outcome_holds(self, now: float) -> bool:
        """Whether the kept outcome is the answer for this frame now, without asking the video model again."""
        if self.outcome.status == pb.NO_FACE:
            return True  # no face: nothing for the model to answer
        return self.outcome.status == pb.USED and now - self.outcome_at < OUTCOME_KEPT_S
