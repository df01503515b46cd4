"""The voice model's architecture: features [n, 126, 98] of 2-s windows -> seven probabilities.

Everything the model needs to turn the shared features (fusion_service.features.audio) into an answer is inside
it (level normalisation, input statistics, the layers), so the exported SavedModel takes exactly the features the
live service computes.
"""

from __future__ import annotations

import math

import keras
import numpy as np

from fusion_service.features.audio import LOG_MEL_COLUMNS, MFCC_COLUMNS, N_FEATURES, N_FRAMES, N_MELS, RMS_COLUMN
from protos.emotion.v1.constants import LABELS

ARCHITECTURES = ("conv1d", "cnn2d")


@keras.saving.register_keras_serializable("emotion_audio")
class LevelNormalisation(keras.layers.Layer):
    """Takes the window's level out of its features, as if every window had been spoken equally loud.

    Each corpus (and each user's microphone) has its own level: left in, it would tell the corpus rather than
    the emotion. A gain g adds 20*log10(g) dB to every log-mel band and sqrt(N_MELS) times that to MFCC 0 (the
    orthonormal DCT of a constant), multiplies RMS by g, and leaves chroma, ZCR and the other MFCCs as they
    are. The reference level is the 90th percentile of the window's frame RMS: its loud speech, not its pauses.
    Doing it here rather than on the waveform keeps the service's audio path untouched.
    """

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        db_per_feature = np.zeros(N_FEATURES, np.float32)
        db_per_feature[MFCC_COLUMNS.start] = math.sqrt(N_MELS)
        db_per_feature[LOG_MEL_COLUMNS] = 1.0
        rms_column = np.zeros(N_FEATURES, np.float32)
        rms_column[RMS_COLUMN] = 1.0
        self._db_per_feature, self._rms_column = db_per_feature, rms_column

    def call(self, features):
        reference = keras.ops.quantile(features[:, :, RMS_COLUMN], 0.9, axis=1)[:, None, None] + 1e-6
        level_db = 20.0 * keras.ops.log(reference) / math.log(10.0)
        shifted = features - level_db * self._db_per_feature
        rms = features / reference
        return shifted * (1.0 - self._rms_column) + rms * self._rms_column


@keras.saving.register_keras_serializable("emotion_audio")
class FrameStatistics(keras.layers.Layer):
    """Per feature, over the window's frames: mean, standard deviation, 10th and 90th percentile."""

    def call(self, x):
        mean = keras.ops.mean(x, axis=1)
        std = keras.ops.sqrt(keras.ops.var(x, axis=1) + 1e-5)
        low, high = keras.ops.unstack(keras.ops.quantile(x, [0.1, 0.9], axis=1), num=2, axis=0)
        return keras.ops.reshape(keras.ops.concatenate([mean, std, low, high], axis=-1), (-1, 4 * x.shape[-1]))


@keras.saving.register_keras_serializable("emotion_audio")
class SpecAugment(keras.layers.Layer):
    """In training only: one random span of frames and one random span of mel bands set to the mean (0 after
    normalisation), so the model cannot lean on one moment or one band (Park et al., 2019). Identity when
    serving."""

    def __init__(self, max_frames: int = 20, max_bands: int = 8, seed: int = 0, **kwargs) -> None:
        super().__init__(**kwargs)
        self.max_frames, self.max_bands, self.seed = max_frames, max_bands, seed
        self._generator = keras.random.SeedGenerator(seed)

    def get_config(self) -> dict:
        return {**super().get_config(), "max_frames": self.max_frames, "max_bands": self.max_bands,
                "seed": self.seed}

    def call(self, frames, training=None):
        if not training:
            return frames
        batch = keras.ops.shape(frames)[0]
        keep_frames = self._keep(batch, N_FRAMES, self.max_frames, 0, N_FRAMES)
        keep_bands = self._keep(batch, N_FEATURES, self.max_bands, LOG_MEL_COLUMNS.start, N_MELS)
        return frames * keep_frames[:, :, None] * keep_bands[:, None, :]

    def _keep(self, batch, size: int, max_width: int, first: int, count: int):
        """[batch, size]: 0 inside one random span of up to max_width within first..first+count, else 1."""
        width = keras.random.uniform((batch, 1), 0, max_width + 1, seed=self._generator)
        start = first + keras.random.uniform((batch, 1), 0, 1, seed=self._generator) * (count - width)
        position = keras.ops.arange(size, dtype="float32")[None, :]
        inside = keras.ops.logical_and(position >= keras.ops.floor(start),
                                       position < keras.ops.floor(start) + keras.ops.floor(width))
        return 1.0 - keras.ops.cast(inside, "float32")


def input_statistics(features: np.ndarray, level_normalise: bool) -> tuple[np.ndarray, np.ndarray]:
    """Per-feature mean and variance of the frames the Normalization layer will see."""
    if level_normalise:
        layer = LevelNormalisation()
        features = np.concatenate([np.asarray(layer(features[start:start + 1024]))
                                   for start in range(0, len(features), 1024)])
    frames = features.reshape(-1, N_FEATURES).astype(np.float64)
    return frames.mean(axis=0), np.maximum(frames.var(axis=0), 1e-6)


def build_model(mean: np.ndarray, variance: np.ndarray, *, architecture: str = "conv1d", conv_filters: int = 128,
                hidden: int = 256, dropout: float = 0.5, learning_rate: float = 1e-3, level_normalise: bool = True,
                spec_augment: bool = False, seed: int = 0, soft_labels: bool = False) -> keras.Model:
    """conv1d: statistics of the frames and of a Conv1D layer over them -> a small dense classifier (the
    statistics generalised to new speakers better than deeper Conv1D stacks: see the report).
    cnn2d: a small 2-D CNN over the log-mel block, its pooled output beside the statistics of all features.
    soft_labels: compiled to learn from label distributions (mixup's blends) instead of class indices."""
    if architecture not in ARCHITECTURES:
        raise ValueError(f"architecture {architecture!r} is not one of {', '.join(ARCHITECTURES)}")
    inputs = keras.Input((N_FRAMES, N_FEATURES), name="features")
    frames = LevelNormalisation()(inputs) if level_normalise else inputs
    frames = keras.layers.Normalization(axis=-1, mean=mean, variance=variance)(frames)
    if spec_augment:
        frames = SpecAugment(seed=seed)(frames)
    parts = [FrameStatistics()(frames)]
    if architecture == "conv1d" and conv_filters:
        local = keras.layers.Conv1D(conv_filters, 3, padding="same", use_bias=False)(frames)
        local = keras.layers.ReLU()(keras.layers.BatchNormalization()(local))
        parts.append(FrameStatistics()(local))
    if architecture == "cnn2d":
        image = keras.layers.Reshape((N_FRAMES, N_MELS, 1))(frames[:, :, LOG_MEL_COLUMNS])
        for filters in (16, 32, 64):
            image = keras.layers.Conv2D(filters, 3, padding="same", use_bias=False)(image)
            image = keras.layers.ReLU()(keras.layers.BatchNormalization()(image))
            image = keras.layers.MaxPooling2D(2)(image)
        parts.append(keras.layers.GlobalAveragePooling2D()(image))
    summary = keras.layers.Concatenate()(parts) if len(parts) > 1 else parts[0]
    x = keras.layers.BatchNormalization()(summary)
    x = keras.layers.Dense(hidden, activation="relu")(x)
    x = keras.layers.Dropout(dropout)(x)
    outputs = keras.layers.Dense(len(LABELS), activation="softmax", name="probabilities")(x)
    model = keras.Model(inputs, outputs)
    loss = "categorical_crossentropy" if soft_labels else "sparse_categorical_crossentropy"
    model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss=loss, metrics=["accuracy"])
    return model
