import numpy as np
import pytest

pytestmark = pytest.mark.ml

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

from protos.emotion.v1.constants import LABELS  # noqa: E402
from training.compare_test_time_flips import single_and_flip_averaged  # noqa: E402
from training.export import export_savedmodel  # noqa: E402

SHAPE = (48, 48, 1)


def served(tmp_path, model: keras.Model):
    version_dir = export_savedmodel(model, tmp_path, "video", "image", SHAPE, LABELS, np.zeros((1, *SHAPE), "float32"))
    return tf.saved_model.load(str(version_dir)).signatures["serving_default"]


def dense_model() -> keras.Model:
    inputs = keras.Input(SHAPE, name="image")
    outputs = keras.layers.Dense(len(LABELS), activation="softmax", name="probabilities")(keras.layers.Flatten()(inputs))
    return keras.Model(inputs, outputs)


def test_the_flip_average_is_the_mean_of_the_answers_for_a_crop_and_its_mirror_image(tmp_path):
    keras.utils.set_random_seed(0)
    model = dense_model()
    crops = np.random.default_rng(0).random((3, *SHAPE), dtype=np.float32)

    single, averaged = single_and_flip_averaged(served(tmp_path, model), crops)

    mirrored = model.predict(crops[:, :, ::-1], verbose=0)
    np.testing.assert_allclose(single, model.predict(crops, verbose=0), atol=1e-5)
    np.testing.assert_allclose(averaged, (single + mirrored) / 2, atol=1e-5)
    assert not np.allclose(single, averaged, atol=1e-4)  # this model is not left-right symmetric


def test_a_left_right_symmetric_crop_gets_the_same_answer_with_and_without_the_flip(tmp_path):
    keras.utils.set_random_seed(0)
    half = np.random.default_rng(1).random((2, 48, 24, 1), dtype=np.float32)
    crops = np.concatenate([half, half[:, :, ::-1]], axis=2)

    single, averaged = single_and_flip_averaged(served(tmp_path, dense_model()), crops)

    np.testing.assert_allclose(averaged, single, atol=1e-6)
