"""The evaluation CLI classifies files through the service's audio path and counts no-speech files as errors."""

import json
import shutil
import subprocess

import numpy as np
import pytest
import soundfile

pytestmark = pytest.mark.ml

import keras

from fusion_service.features.audio import N_FEATURES, N_FRAMES  # noqa: E402
from protos.emotion.v1.constants import LABELS  # noqa: E402
from training import evaluate  # noqa: E402
from training.audio_eval import audio_predictions  # noqa: E402
from training.export import export_savedmodel  # noqa: E402


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    inputs = keras.Input((N_FRAMES, N_FEATURES))
    pooled = keras.layers.GlobalAveragePooling1D()(keras.layers.Normalization(axis=-1, mean=0.0, variance=400.0)(inputs))
    model = keras.Model(inputs, keras.layers.Dense(len(LABELS), activation="softmax")(pooled))
    warmup = np.zeros((2, N_FRAMES, N_FEATURES), np.float32)
    return export_savedmodel(model, tmp_path_factory.mktemp("repo"), "audio", "features", (N_FRAMES, N_FEATURES),
                             LABELS, warmup)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    """A class-folder layout: one spoken sentence (angry/) and one silent file (sad/)."""
    if shutil.which("espeak-ng") is None:
        pytest.fail("espeak-ng is needed to generate test speech: apt-get install espeak-ng")
    root = tmp_path_factory.mktemp("data")
    (root / "angry").mkdir()
    (root / "sad").mkdir()
    subprocess.run(["espeak-ng", "-w", str(root / "angry" / "spoken.wav"),
                    "I told you twice already, put it back where you found it."], check=True)
    soundfile.write(str(root / "sad" / "silence.flac"), np.zeros(48000, np.float32), 16000)
    return root


def test_audio_predictions_give_probabilities_for_speech_and_none_for_silence(data_dir, model_dir):
    labels, predictions = audio_predictions(data_dir, model_dir)
    by_label = dict(zip(labels, predictions))
    assert sorted(labels) == ["angry", "sad"]
    assert by_label["sad"] is None
    assert by_label["angry"].shape == (len(LABELS),)
    assert by_label["angry"].sum() == pytest.approx(1.0, abs=1e-5)


def test_evaluate_cli_prints_one_json_object_in_both_views(data_dir, model_dir, capsys):
    assert evaluate.main(["audio", str(data_dir), "--json", "--model", str(model_dir)]) == 0
    report = json.loads(capsys.readouterr().out)
    for view in (report, report["seed4"]):
        assert {"n", "accuracy", "uar", "per_class_recall", "confusion", "labels"} <= set(view)
        assert view["n"] == 2
    sad_row = report["confusion"][LABELS.index("sad")]
    assert sad_row[-1] == 1  # silence: no speech window, counted as an error
    assert report["accuracy"] <= 0.5


def test_evaluate_cli_prints_tables_without_json(data_dir, model_dir, capsys):
    evaluate.main(["audio", str(data_dir), "--model", str(model_dir)])
    out = capsys.readouterr().out
    assert "seven classes" in out and "four classes" in out and "UAR" in out
