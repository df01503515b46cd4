"""FaceMesh's presence score confirms BlazeFace's detections (a person's face is one, a cat's face is not), and
its points lie on the face it looked at."""

from __future__ import annotations

import cv2
import numpy as np
from skimage import data

from fusion_service.features.faces.blazeface import BlazeFaceDetector
from fusion_service.features.faces.boxes import Box
from fusion_service.features.faces.mesh import MIN_PRESENCE, FaceMesh
from testkit.media import face_photo


def test_a_persons_face_is_confirmed_and_a_cats_face_is_not():
    mesh = FaceMesh()
    cat = np.ascontiguousarray(data.chelsea())  # RGB, as the detector hands its image over
    (cat_face,) = BlazeFaceDetector(confirm=False, multi_scale=False).detect(cv2.cvtColor(cat, cv2.COLOR_RGB2BGR))
    (her_face,) = BlazeFaceDetector(confirm=False, multi_scale=False).detect(face_photo())
    assert mesh.look(cat, cat_face).presence < MIN_PRESENCE
    assert mesh.look(cv2.cvtColor(face_photo(), cv2.COLOR_BGR2RGB), her_face).presence > 0.9


def test_the_detector_drops_what_is_not_confirmed():
    cat = cv2.cvtColor(data.chelsea(), cv2.COLOR_RGB2BGR)
    assert BlazeFaceDetector(confirm=False).detect(cat) != []
    assert BlazeFaceDetector().detect(cat) == []


def test_a_box_past_the_image_edge_is_scored_on_replicated_edges():
    look = FaceMesh().look(cv2.cvtColor(face_photo(), cv2.COLOR_BGR2RGB), Box(400, 400, 200, 200))
    assert 0.0 <= look.presence <= 1.0


def test_the_points_lie_on_the_face_in_the_images_pixels():
    photo = face_photo()
    (box,) = BlazeFaceDetector(confirm=False, multi_scale=False).detect(photo)
    points = FaceMesh().look(cv2.cvtColor(photo, cv2.COLOR_BGR2RGB), box).points
    assert points.shape == (468, 2)
    centre = points.mean(axis=0)
    assert box.x < centre[0] < box.x + box.width and box.y < centre[1] < box.y + box.height
