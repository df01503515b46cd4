"""Is it a human face? MediaPipe's face-landmark network (FaceMesh) says, besides its landmarks, how sure it is that
its input shows a face: BlazeFace's detections are confirmed by that score.

Why: on the detection benchmark's face-free frames (training/face_detection_benchmark.py) BlazeFace took a cat's
face, galaxies, a motorcycle's parts and noise for faces (0.15 per frame at 640x480). On 16 such detections and
150 real faces pasted at 24-400 px, the presence score of the false ones was at most 0.06 and of the real ones at
least 0.15 (98.7% above 0.3).
"""

from __future__ import annotations

import threading

import cv2
import numpy as np

from fusion_service.features.faces.boxes import Box
from fusion_service.features.faces.models import network_file

INPUT_SIZE = 192
CROP_SIDE = 1.5  # the square given to the network, in sides of the detector's box: the framing FaceMesh expects
MIN_PRESENCE = 0.1  # between the benchmark's false (<= 0.06) and real faces (>= 0.15)


class FacePresence:
    """Scores boxes in an RGB image by FaceMesh's face-presence output. Calls are serialised with a lock (OpenCV's
    network object is not safe to share between threads)."""

    def __init__(self) -> None:
        self._net = cv2.dnn.readNetFromTFLite(str(network_file("face_landmark.tflite")))
        self._net.setInput(np.zeros((1, 3, INPUT_SIZE, INPUT_SIZE), np.float32))
        # Two outputs: the 1404 landmark coordinates and the one presence logit; tell them apart by size.
        self._presence_output = min(self._net.getUnconnectedOutLayersNames(),
                                    key=lambda name: self._net.forward(name).size)
        self._lock = threading.Lock()

    def score(self, rgb: np.ndarray, box: Box) -> float:
        """How sure FaceMesh is, from 0 to 1, that the box shows a face."""
        side = CROP_SIDE * max(box.width, box.height)
        scale = INPUT_SIZE / side
        centre_x, centre_y = box.x + box.width / 2, box.y + box.height / 2
        half = INPUT_SIZE / 2
        to_crop = np.float32([[scale, 0, half - centre_x * scale], [0, scale, half - centre_y * scale]])
        interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
        crop = cv2.warpAffine(rgb, to_crop, (INPUT_SIZE, INPUT_SIZE), flags=interpolation, borderMode=cv2.BORDER_REPLICATE)
        blob = (crop.astype(np.float32) / 255.0).transpose(2, 0, 1)[np.newaxis]  # NCHW, RGB in [0, 1]
        with self._lock:
            self._net.setInput(np.ascontiguousarray(blob))
            logit = float(self._net.forward(self._presence_output).reshape(-1)[0])
        return 1.0 / (1.0 + np.exp(-logit))

    def is_face(self, rgb: np.ndarray, box: Box) -> bool:
        return self.score(rgb, box) >= MIN_PRESENCE
