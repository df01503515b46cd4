"""FaceMesh's presence score confirms BlazeFace's detections: a person's face is one, a cat's face is not."""

from __future__ import annotations

import cv2
import numpy as np
from skimage import data

from fusion_service.features.faces.blazeface import BlazeFaceDetector
from fusion_service.features.faces.boxes import Box
from fusion_service.features.faces.presence import MIN_PRESENCE, FacePresence
from testkit.media import face_photo


def test_a_persons_face_is_confirmed_and_a_cats_face_is_not():
    presence = FacePresence()
    cat = np.ascontiguousarray(data.chelsea())  # RGB, as the detector hands its image over
    (cat_face,) = BlazeFaceDetector(confirm=False).detect(cv2.cvtColor(cat, cv2.COLOR_RGB2BGR))
    (her_face,) = BlazeFaceDetector(confirm=False).detect(face_photo())
    assert presence.score(cat, cat_face) < MIN_PRESENCE
    assert presence.score(cv2.cvtColor(face_photo(), cv2.COLOR_BGR2RGB), her_face) > 0.9


def test_the_detector_drops_what_is_not_confirmed():
    cat = cv2.cvtColor(data.chelsea(), cv2.COLOR_RGB2BGR)
    assert BlazeFaceDetector(confirm=False).detect(cat) != []
    assert BlazeFaceDetector().detect(cat) == []


def test_a_box_past_the_image_edge_is_scored_on_replicated_edges():
    score = FacePresence().score(cv2.cvtColor(face_photo(), cv2.COLOR_BGR2RGB), Box(400, 400, 200, 200))
    assert 0.0 <= score <= 1.0
