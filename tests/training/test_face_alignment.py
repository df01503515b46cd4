"""The alignment comparison: a training crop and a live frame of the same face come out aligned alike."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

pytestmark = pytest.mark.ml

from fusion_service.features.faces.align import EyeFraming, FaceLandmarker  # noqa: E402
from fusion_service.features.faces.gray import to_gray  # noqa: E402
from fusion_service.features.faces.pipeline import FacePipeline  # noqa: E402
from testkit.media import face_photo  # noqa: E402
from training.compare_face_alignment import both_crops  # noqa: E402
from training.face_corpora import FaceItem  # noqa: E402


def test_a_training_crop_and_a_live_frame_of_one_face_give_the_same_aligned_crop():
    pipeline, landmarker = FacePipeline(), FaceLandmarker()
    frame = face_photo()
    box = pipeline.detector.detect(frame)[0]
    side = max(box.width, box.height)
    crop = cv2.resize(to_gray(frame)[box.y:box.y + side, box.x:box.x + side], (48, 48), interpolation=cv2.INTER_AREA)
    framing, seconds = EyeFraming(eye_distance=0.39, eye_height=0.36), []

    live_today, live_aligned = both_crops(FaceItem("frame", "happy", "test", is_face_crop=False, pixels=frame),
                                          pipeline, landmarker, framing, seconds)
    crop_today, crop_aligned = both_crops(FaceItem("crop", "happy", "test", is_face_crop=True, pixels=crop),
                                          pipeline, landmarker, framing, seconds)

    assert live_aligned.shape == crop_aligned.shape == (48, 48, 1) and len(seconds) == 2

    def agreement(a: np.ndarray, b: np.ndarray) -> float:
        return float(np.corrcoef(a.ravel(), b.ravel())[0, 1])

    # One geometry from both routes: the aligned crops agree more closely than the two framings of today do.
    assert agreement(live_aligned, crop_aligned) > 0.9
    assert agreement(live_aligned, crop_aligned) > agreement(live_today, crop_today)
