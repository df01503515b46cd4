"""Capture never waits on the network: bounded queues drop the oldest input, with real OpenCV and
sounddevice-callback code paths fed by a video file and a sound file."""

from __future__ import annotations

import threading

import cv2
import numpy as np
import pytest
import soundfile

from capture_client.capture import Camera, CaptureError, Microphone, parse_source
from capture_client.media import read_audio
from capture_client.outbox import Outbox
from capture_client.modes import stream_config
from protos.emotion.v1 import emotion_pb2 as pb
from protos.emotion.v1.constants import AUDIO_SAMPLE_RATE_HZ
from tests.client.videos import write_video


def frame(value: int) -> np.ndarray:
    return np.full((4, 4, 3), value, dtype=np.uint8)


def test_frames_beyond_capacity_drop_the_oldest_first_and_are_counted():
    outbox = Outbox(frame_capacity=2)
    for sequence in range(1, 11):
        outbox.put_frame(sequence, frame(sequence))
    assert outbox.frames_dropped == 8
    taken = [outbox.take(timeout_s=0)[1][0] for _ in range(2)]
    assert taken == [9, 10]
    assert outbox.take(timeout_s=0) == (b"", None)


def test_audio_beyond_capacity_drops_the_oldest_first_and_is_counted():
    outbox = Outbox(audio_capacity_s=0.5)
    blocks = [np.full(1600, i, dtype=np.int16).tobytes() for i in range(10)]  # 10 x 100 ms
    for block in blocks:
        outbox.put_audio(block)
    audio, _ = outbox.take(timeout_s=0)
    assert audio == b"".join(blocks[5:])
    assert outbox.audio_dropped_seconds == pytest.approx(0.5)


def test_a_stream_sends_its_config_first_then_audio_and_jpeg_frames_until_done():
    outbox = Outbox()
    image = np.random.default_rng(0).integers(0, 255, (48, 64, 3), dtype=np.uint8)
    outbox.put_audio(b"\x01\x00" * 160)
    outbox.put_frame(7, image)
    done = threading.Event()
    requests = outbox.requests(stream_config("both", 10.0), done)

    config = next(requests).config
    assert (config.audio_encoding, config.audio_sample_rate_hz, config.result_rate_hz) == (pb.PCM_S16LE, 16000, 10.0)
    assert next(requests).audio.data == b"\x01\x00" * 160
    sent = next(requests).frame
    assert sent.sequence == 7
    decoded = cv2.imdecode(np.frombuffer(sent.image.encoded, np.uint8), cv2.IMREAD_COLOR)
    assert decoded.shape == image.shape
    done.set()
    assert list(requests) == []


@pytest.mark.parametrize(("mode", "modalities"), [("both", []), ("audio", [pb.AUDIO]), ("video", [pb.VIDEO])])
def test_each_mode_asks_the_service_for_its_modalities(mode, modalities):
    assert list(stream_config(mode, 0).options.modalities) == modalities


def test_a_camera_reading_a_file_never_blocks_when_nothing_is_sent(tmp_path):
    video = write_video(tmp_path / "camera.mp4", seconds=1.0, fps=30)
    outbox = Outbox(frame_capacity=2)
    sequences = []
    camera = Camera(str(video), lambda seq, image: (sequences.append(seq), outbox.put_frame(seq, image)))
    camera.start()
    assert camera.ended.wait(timeout=20), "the camera thread stalled"
    camera.stop()
    assert sequences == list(range(1, 31))
    assert outbox.frames_dropped == 28
    assert [outbox.take(0)[1][0], outbox.take(0)[1][0]] == [29, 30]
    assert camera.latest().shape == (480, 640, 3)


def test_a_missing_camera_says_what_to_do():
    with pytest.raises(CaptureError, match="--list-devices"):
        Camera("/nonexistent/camera.mp4", lambda *_: None)


def test_a_sound_file_plays_as_the_microphone_in_blocks_through_the_sounddevice_callback(tmp_path, speech_samples):
    sound = tmp_path / "one_second.wav"
    soundfile.write(sound, speech_samples[:AUDIO_SAMPLE_RATE_HZ], AUDIO_SAMPLE_RATE_HZ, subtype="PCM_16")
    outbox = Outbox(audio_capacity_s=30)
    blocks = []
    microphone = Microphone(str(sound), lambda block: (blocks.append(len(block)), outbox.put_audio(block)), block_seconds=0.1)
    microphone.start()
    assert microphone.ended.wait(timeout=20)
    microphone.stop()
    assert set(blocks[:-1]) == {3200}  # 100 ms of int16 at 16 kHz
    audio, _ = outbox.take(0)
    np.testing.assert_array_equal(np.frombuffer(audio, dtype=np.int16), read_audio(sound))
    assert outbox.audio_dropped_seconds == 0


def test_a_missing_microphone_says_what_to_do():
    with pytest.raises(CaptureError, match="--mode video"):
        Microphone("no microphone has this name", lambda block: None)


def test_device_indexes_are_numbers_and_anything_else_a_name_or_path():
    assert parse_source("0") == 0 and parse_source("12") == 12
    assert parse_source("USB Audio") == "USB Audio" and parse_source("rtsp://cam/1") == "rtsp://cam/1"
