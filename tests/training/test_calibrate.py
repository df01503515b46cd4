"""The calibration step: re-export of an exported model with a calibration, method choice, version clean-up."""

import numpy as np
import pytest

pytestmark = pytest.mark.ml

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402
from scipy.special import softmax  # noqa: E402

from protos.emotion.v1.constants import LABELS  # noqa: E402
from training.calibrate import (  # noqa: E402
    CalibrationSet,
    RawModel,
    choose_method,
    cross_fit_data,
    fit_on_every_speaker,
    raw_endpoint,
    remove_older_versions,
)
from training.calibration import Calibration  # noqa: E402
from training.export import export_savedmodel, read_calibration  # noqa: E402

INPUT_SHAPE = (6, 3)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    inputs = keras.Input(INPUT_SHAPE)
    outputs = keras.layers.Dense(len(LABELS), activation="softmax")(keras.layers.GlobalAveragePooling1D()(inputs))
    model = keras.Model(inputs, outputs)
    batch = np.random.default_rng(0).normal(size=(4, *INPUT_SHAPE)).astype(np.float32)
    repository = tmp_path_factory.mktemp("repository")
    version_dir = export_savedmodel(model, repository, "audio", "features", INPUT_SHAPE, LABELS, batch)
    return repository, version_dir, model, batch


def test_a_calibrated_re_export_keeps_the_model_and_serves_it_calibrated(exported):
    repository, version_dir, model, batch = exported
    endpoint = raw_endpoint(version_dir)
    assert endpoint == "uncalibrated"
    calibration = Calibration("temperature", (0.5,) * len(LABELS), (0.0,) * len(LABELS))
    again = export_savedmodel(RawModel(version_dir, endpoint, INPUT_SHAPE), repository, "audio", "features", INPUT_SHAPE, LABELS,
                              batch, version=2, calibration=calibration)
    signatures = tf.saved_model.load(str(again)).signatures
    raw = model(batch).numpy()
    np.testing.assert_allclose(signatures["uncalibrated"](features=tf.constant(batch))["probabilities"], raw, atol=1e-6)
    np.testing.assert_allclose(signatures["serving_default"](features=tf.constant(batch))["probabilities"],
                               calibration.apply(raw), atol=1e-5)
    assert read_calibration(again)["method"] == "temperature"
    # calibrating the calibrated version starts again from the model's own answers
    assert raw_endpoint(again) == "uncalibrated"

    assert remove_older_versions(repository / "audio", keep=again) == ["1"]
    assert sorted(p.name for p in (repository / "audio").iterdir()) == ["2"]


def test_the_method_is_chosen_on_the_fitting_folds_only():
    rng = np.random.default_rng(1)
    n = 1200
    logits = rng.normal(scale=1.5, size=(n, len(LABELS)))
    labels = np.array([rng.choice(len(LABELS), p=p) for p in softmax(logits, axis=1)])
    answers = softmax(3 * logits, axis=1)  # over-confident by a temperature of 3: one shared scale is the truth
    parts = np.arange(n) % 3
    sets = [CalibrationSet("corpus", [], labels, parts, parts.astype(str))]
    windows = [[row[None] for row in answers]]
    scores = choose_method(windows, sets)
    assert set(scores) == {"temperature", "vector"}
    assert scores["temperature"] <= scores["vector"] + 0.01
    # the reporting part (2) takes no part: changing its answers changes nothing
    scrambled = [[row[None] if p != 2 else np.full((1, len(LABELS)), 1 / len(LABELS)) for row, p in zip(answers, parts)]]
    assert choose_method(scrambled, sets) == pytest.approx(scores)


def test_cross_fit_data_keeps_every_sample_with_its_corpus_speaker_and_part():
    windows = [[np.full((2, len(LABELS)), 1 / len(LABELS)), np.full((1, len(LABELS)), 1 / len(LABELS))],
               [np.full((3, len(LABELS)), 1 / len(LABELS))]]
    sets = [CalibrationSet("nemo", [], np.array([1, 2]), np.array([0, 2]), np.array(["nemo:EB0", "nemo:TP0"])),
            CalibrationSet("urdu", [], np.array([4]), np.array([2]), np.array(["urdu:SM6"]))]
    data = cross_fit_data(sets, windows)
    assert [len(s) for s in data.samples] == [2, 1, 3]
    assert data.labels.tolist() == [1, 2, 4]
    assert data.corpora.tolist() == ["nemo", "nemo", "urdu"]
    assert data.groups.tolist() == ["nemo:EB0", "nemo:TP0", "urdu:SM6"]
    assert data.parts.tolist() == [0, 2, 2]


def test_fitting_on_every_speaker_picks_by_cross_fitted_nll_and_fits_on_all_samples(tmp_path):
    rng = np.random.default_rng(2)
    sets, windows = [], []
    for corpus in ("nemo", "urdu"):
        n = 600
        logits = rng.normal(scale=1.5, size=(n, len(LABELS)))
        labels = np.array([rng.choice(len(LABELS), p=p) for p in softmax(logits, axis=1)])
        speakers = np.array([f"{corpus}:S{i % 4}" for i in range(n)])
        sets.append(CalibrationSet(corpus, [], labels, np.arange(n) % 3, speakers))
        windows.append([row[None] for row in softmax(3 * logits, axis=1)])  # over-confident by a temperature of 3

    fitted = fit_on_every_speaker("audio", sets, windows, tmp_path)

    assert fitted.fitted_on == {"nemo": 600, "urdu": 600}
    comparison = fitted.figures["cross_fitted"]
    chosen = comparison["candidates"][comparison["chosen"]]
    assert chosen["mean_corpus_nll"] == min(c["mean_corpus_nll"] for c in comparison["candidates"].values())
    assert fitted.method == comparison["chosen"]
    assert fitted.calibration.to_dict() == chosen["fitted_on_all"]
    assert fitted.calibration.scale[0] == pytest.approx(1 / 3, abs=0.05)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["reliability_nemo.png", "reliability_urdu.png"]
