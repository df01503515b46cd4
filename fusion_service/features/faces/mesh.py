"""MediaPipe's face landmark network (FaceMesh) on the square around a detector's box: how sure it is that the
square shows a face, and its 468 points. BlazeFace's detections are confirmed by the first (blazeface.py), the
eyes for aligned crops come from the second (align.py).

Why confirm: on the detection benchmark's face-free frames (training/face_detection_benchmark.py) BlazeFace took a
cat's face, galaxies, a motorcycle's parts and noise for faces (0.15 per frame at 640x480). Why 0.5: of the
detections the search makes on that benchmark's exploration frames, real faces scored 0.97 or more but for about
2%, false ones spread over 0-1 (a motorcycle's engine cover, whose badge and lettering make a face, scores 0.99);
0.5 instead of 0.1 took the false faces per face-free frame from 0.05-0.07 to 0-0.02 and lost no face. Why 0.8:
the finer search (faces shown to BlazeFace at 32 px) gives more candidates; the false faces that passed 0.5 on
its exploration frames scored 0.6-0.86, and 0.8 instead of 0.5 took them from 0.025 to 0.017 (seed 1) and from
0.025 to 0.008 (seed 2) per face-free 1280x720 frame, losing no face
(training/reports/video/face_detection_settings.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from fusion_service.features.faces.boxes import Box
from fusion_service.features.faces.models import network_file
from fusion_service.features.faces.network import TfliteNetwork

NETWORK_FILE = "face_landmark.tflite"
INPUT_SIZE = 192
CROP_SIDE = 1.5  # the square given to the network, in sides of the detector's box: the framing FaceMesh expects
MIN_PRESENCE = 0.8  # see the module's docstring


@dataclass(frozen=True)
class MeshLook:
    """What FaceMesh saw in the square around one box."""

    presence: float  # 0 to 1: how sure it is that the square shows a face
    points: np.ndarray  # [468, 2] x, y of the landmarks, in the image's pixels


class FaceMesh:
    def __init__(self, model_path: str | Path | None = None) -> None:
        self._network = TfliteNetwork(Path(model_path) if model_path is not None else network_file(NETWORK_FILE))

    def look(self, rgb: np.ndarray, box: Box) -> MeshLook:
        """FaceMesh on the square CROP_SIDE box sides wide around `box` in a uint8 RGB image."""
        side = CROP_SIDE * max(box.width, box.height)
        scale = INPUT_SIZE / side
        centre_x, centre_y = box.x + box.width / 2, box.y + box.height / 2
        half = INPUT_SIZE / 2
        to_crop = np.float32([[scale, 0, half - centre_x * scale], [0, scale, half - centre_y * scale]])
        crop = cv2.warpAffine(rgb, to_crop, (INPUT_SIZE, INPUT_SIZE), flags=cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_REPLICATE)
        outputs = self._network.run((crop.astype(np.float32) / 255.0)[np.newaxis])  # NHWC, RGB in [0, 1]
        # Two outputs: the 1404 landmark coordinates (x, y, z in input pixels) and the one presence logit.
        logit, landmarks = sorted(outputs, key=lambda output: output.size)
        points = landmarks.reshape(-1, 3)[:, :2]
        return MeshLook(
            presence=float(1.0 / (1.0 + np.exp(-float(logit.reshape(-1)[0])))),
            points=(points - half) / scale + (centre_x, centre_y),
        )
