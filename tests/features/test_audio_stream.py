"""A stream's audio featurised as it arrives must give the model what the whole window would."""

from __future__ import annotations

import numpy as np
import pytest

from fusion_service.features.audio import HOP_LENGTH, SAMPLE_RATE, WINDOW_SAMPLES
from fusion_service.features.audio_input import prepare_audio
from fusion_service.features.audio_stream import AudioRing, StreamingAudio


def test_audio_ring_keeps_the_latest_samples_in_order():
    ring = AudioRing(5)
    ring.append(np.arange(3, dtype=np.float32))
    np.testing.assert_array_equal(ring.latest(5), [0, 1, 2])
    ring.append(np.arange(3, 7, dtype=np.float32))
    np.testing.assert_array_equal(ring.latest(5), [2, 3, 4, 5, 6])
    ring.append(np.arange(10, 20, dtype=np.float32))
    np.testing.assert_array_equal(ring.latest(5), np.arange(15, 20))
    assert ring.total == 17


def test_audio_ring_matches_everything_received_over_many_wraps():
    rng = np.random.default_rng(0)
    ring, received = AudioRing(7), []
    for _ in range(200):
        chunk = rng.standard_normal(int(rng.integers(0, 12))).astype(np.float32)
        ring.append(chunk)
        received.extend(chunk)
        np.testing.assert_array_equal(ring.latest(7), np.asarray(received[-7:], dtype=np.float32))
        end = len(received) - int(rng.integers(0, min(3, len(received)) + 1))
        np.testing.assert_array_equal(ring.latest(4, end), np.asarray(received[max(0, end - 4):end], dtype=np.float32))
    assert ring.total == len(received)


def test_audio_ring_refuses_samples_it_no_longer_holds():
    ring = AudioRing(4)
    ring.append(np.arange(10, dtype=np.float32))
    with pytest.raises(ValueError, match="not held"):
        ring.latest(2, end=5)


def stream_of(audio: np.ndarray, extractor, detector, seed: int = 0):
    """(snapshot, prepared input) for each chunk of `audio`, sent in chunks of uneven sizes."""
    rng = np.random.default_rng(seed)
    stream = StreamingAudio(extractor, detector, SAMPLE_RATE)
    position = 0
    while position < len(audio):
        size = int(rng.choice([320, 777, 1600, 3200]))
        stream.append(audio[position:position + size])
        position += size
        snapshot = stream.snapshot()
        yield snapshot, stream.prepared(snapshot, max_seconds=10.0)


def test_each_window_features_equal_the_whole_windows(spoken, extractor, detector):
    whole_windows = 0
    for snapshot, prepared in stream_of(np.concatenate([spoken, spoken]), extractor, detector):
        if len(snapshot.samples) < WINDOW_SAMPLES:
            continue
        assert snapshot.end % HOP_LENGTH == 0  # a window ends on a hop of the feature frames
        assert prepared.speech_windows == 1
        np.testing.assert_allclose(prepared.features[0], extractor(snapshot.samples), rtol=0, atol=1e-5)
        whole_windows += 1
    assert whole_windows > 20


def test_a_window_is_speech_where_the_window_alone_is(spoken, make_noise, extractor, detector):
    # Speech, a pause of silence, steady noise, speech again: windows across each change and within each part.
    audio = np.concatenate([spoken, np.zeros(3 * SAMPLE_RATE, np.float32), make_noise("pink", -30, seconds=3.0), spoken])
    verdicts = [(prepared.speech_windows == 1, detector.is_speech(snapshot.samples))
                for snapshot, prepared in stream_of(audio, extractor, detector, seed=1)
                if len(snapshot.samples) == WINDOW_SAMPLES]
    streamed, alone = np.array(verdicts).T
    assert streamed.any() and not streamed.all()
    assert np.mean(streamed == alone) >= 0.95


def test_silence_gives_no_speech_window_and_no_features(extractor, detector):
    for snapshot, prepared in stream_of(np.zeros(3 * SAMPLE_RATE, np.float32), extractor, detector):
        assert prepared.speech_windows == 0 and len(prepared.features) == 0


def test_before_the_first_whole_window_the_audio_is_prepared_as_a_fuse_calls(spoken, extractor, detector):
    stream = StreamingAudio(extractor, detector, SAMPLE_RATE)
    stream.append(spoken[:SAMPLE_RATE])
    snapshot = stream.snapshot()
    expected = prepare_audio(spoken[:SAMPLE_RATE], SAMPLE_RATE, extractor=extractor, detector=detector)
    np.testing.assert_array_equal(stream.prepared(snapshot, max_seconds=10.0).features, expected.features)


def test_another_sample_rate_is_resampled_window_by_window(spoken, extractor, detector):
    stream = StreamingAudio(extractor, detector, 8000)
    audio = spoken[::2]  # about 8 kHz
    stream.append(audio)
    snapshot = stream.snapshot()
    assert len(snapshot.samples) == 2 * 8000
    expected = prepare_audio(audio[-2 * 8000:], 8000, extractor=extractor, detector=detector)
    np.testing.assert_array_equal(stream.prepared(snapshot, max_seconds=10.0).features, expected.features)
