"""The benchmark's inputs must be what the figures claim: a 640x480 frame with one face (a stream's frames
differing like a camera's), speech in 20 ms chunks."""

from __future__ import annotations

import cv2
import numpy as np

from bench.media import Media
from fusion_service.features.faces.pipeline import FacePipeline
from fusion_service.features.speech import SpeechDetector


def test_the_frame_is_640_by_480_and_the_detector_finds_one_face_in_its_jpeg():
    media = Media()
    assert media.frame.shape == (480, 640, 3)
    decoded = cv2.imdecode(np.frombuffer(media.frame_jpeg, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
    assert decoded.shape == (480, 640, 3)
    boxes, crops = FacePipeline().faces(media.frame_decoded)
    assert len(boxes) == 1 and crops.shape == (1, 48, 48, 1)


def test_the_speech_window_is_two_seconds_of_speech_and_the_chunks_are_100_ms_unless_asked_for_others():
    media = Media()
    assert media.speech_window.shape == (32000,)
    assert SpeechDetector().is_speech(media.speech_window)
    assert len(media.speech_window_pcm16) == 2 * 32000
    assert {len(chunk) for chunk in media.speech_chunks_pcm16()} == {2 * 1600}
    assert {len(chunk) for chunk in media.speech_chunks_pcm16(0.02)} == {2 * 320}
    long, short = b"".join(media.speech_chunks_pcm16()), b"".join(media.speech_chunks_pcm16(0.02))
    assert short.startswith(long)  # the same speech, cut differently


def test_a_stream_sends_frames_that_differ_like_a_cameras_each_showing_the_one_face():
    frames = Media().camera_frames_jpeg
    assert len(set(frames)) == len(frames) > 1  # no frame repeats another byte for byte, as with a real webcam
    pipeline = FacePipeline()
    for frame in frames[:3]:
        decoded = cv2.imdecode(np.frombuffer(frame, dtype=np.uint8), cv2.IMREAD_COLOR)
        assert decoded.shape == (480, 640, 3)
        assert len(pipeline.faces(decoded)[0]) == 1
