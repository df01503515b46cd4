"""Training windows: the same features the live service computes, and augmented copies on their clip's side."""

import functools
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile

from fusion_service.features.audio import N_FEATURES, N_FRAMES, AudioFeatureExtractor
from fusion_service.features.audio_input import prepare_audio
from fusion_service.features.speech import SpeechDetector
from protos.emotion.v1.constants import LABELS
from training import audio_dataset
from training.audio_dataset import AugmentConfig, build_windows
from training.speech_corpora import find_records

SENTENCES = {
    "03-01-05-01-01-01-03.wav": "Kids are talking by the door, and I will not wait any longer.",
    "03-01-04-01-02-01-04.wav": "Dogs are sitting by the door. Nobody came to see me today.",
}


def speak(text: str, path: Path) -> None:
    """espeak-ng writes 22.05 kHz speech: the loaders must resample it, as the service does."""
    if shutil.which("espeak-ng") is None:
        pytest.fail("espeak-ng is needed to generate test speech: apt-get install espeak-ng")
    subprocess.run(["espeak-ng", "-w", str(path), text], check=True, capture_output=True)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("ravdess") / "Actor_03"
    root.mkdir()
    for name, text in SENTENCES.items():
        speak(text, root / name)
    return root.parent


def test_training_windows_equal_the_services_features_for_the_same_audio(corpus):
    records = find_records(corpus)
    windows = build_windows(records, augmented_copies=0, config=AugmentConfig(), seed=0)
    extractor, detector = AudioFeatureExtractor(), SpeechDetector()
    for index, record in enumerate(records):
        samples, rate = soundfile.read(str(record.path), dtype="float32")
        assert rate != 16000  # the file's own rate: resampling is part of what must agree
        served = prepare_audio(samples, rate, extractor=extractor, detector=detector).features
        trained = windows.features[windows.clips == index]
        assert served.shape[0] >= 1
        np.testing.assert_array_equal(trained, served)
        assert set(windows.labels[windows.clips == index]) == {LABELS.index(record.label)}


def test_augmented_copies_keep_their_clips_speaker_label_and_shape(corpus, tmp_path):
    records = find_records(corpus)
    windows = build_windows(records, augmented_copies=2, config=AugmentConfig(), seed=1, cache_dir=tmp_path)
    assert windows.features.shape[1:] == (N_FRAMES, N_FEATURES)
    assert set(windows.copies) <= {0, 1, 2} and (windows.copies > 0).any()
    for index, record in enumerate(records):
        rows = windows.clips == index
        assert set(windows.speakers[rows]) == {record.speaker}
        assert set(windows.labels[rows]) == {LABELS.index(record.label)}
    augmented = windows.features[windows.copies > 0]
    assert not any(np.array_equal(a, c) for a in augmented for c in windows.features[windows.copies == 0])

    cached = build_windows(records, augmented_copies=2, config=AugmentConfig(), seed=1, cache_dir=tmp_path)
    np.testing.assert_array_equal(cached.features, windows.features)
    assert len(list(tmp_path.glob("audio_windows_*.npz"))) == 1


def test_windows_cached_under_other_speech_detector_settings_are_not_reused(corpus, tmp_path, monkeypatch):
    records = find_records(corpus)
    build_windows(records, augmented_copies=0, config=AugmentConfig(), seed=0, cache_dir=tmp_path)
    stricter = functools.partial(SpeechDetector, min_level_dbfs=-10.0)  # no espeak frame is this loud
    monkeypatch.setattr(audio_dataset, "SpeechDetector", stricter)
    windows = build_windows(records, augmented_copies=0, config=AugmentConfig(), seed=0, cache_dir=tmp_path)
    assert len(windows.features) == 0
    assert len(list(tmp_path.glob("audio_windows_*.npz"))) == 2
