"""Face items to training arrays, hold-out splits, class weights and the augmentation that runs in tf.data."""

from __future__ import annotations

from collections.abc import Sequence

import keras
import numpy as np
import tensorflow as tf

from fusion_service.features.faces.crop import FACE_SIZE
from fusion_service.features.faces.pipeline import FacePipeline
from protos.emotion.v1.constants import LABELS
from training.face_corpora import FaceItem, NoFaceError, face_crop_of


def crop_arrays(items: Sequence[FaceItem], pipeline: FacePipeline) -> tuple[np.ndarray, np.ndarray, list[FaceItem]]:
    """Crops float32 [N, 48, 48, 1], label indices int32 [N], and the items kept (full images without a face are dropped)."""
    crops, labels, kept = [], [], []
    for item in items:
        try:
            crops.append(face_crop_of(item, pipeline))
        except NoFaceError:
            continue
        labels.append(LABELS.index(item.label))
        kept.append(item)
    x = np.stack(crops) if crops else np.zeros((0, FACE_SIZE, FACE_SIZE, 1), np.float32)
    return x, np.asarray(labels, dtype=np.int32), kept


def stratified_holdout(labels: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train, held-out) indices with `fraction` of every class held out, the same for the same seed."""
    rng = np.random.default_rng(seed)
    held = []
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        rng.shuffle(members)
        held.append(members[: round(fraction * len(members))])
    held_out = np.sort(np.concatenate(held))
    return np.setdiff1d(np.arange(len(labels)), held_out), held_out


def subject_holdout(subjects: Sequence[str], fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train, held-out) indices where whole subjects are held out, so no person is on both sides."""
    unique = np.array(sorted(set(subjects)))
    rng = np.random.default_rng(seed)
    held_subjects = set(rng.choice(unique, size=max(1, round(fraction * len(unique))), replace=False))
    is_held = np.array([subject in held_subjects for subject in subjects])
    return np.flatnonzero(~is_held), np.flatnonzero(is_held)


def named_holdout(subjects: Sequence[str | None], held_subjects: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """(train, held-out) indices for a fixed, documented list of held-out subjects (e.g. performers)."""
    held = set(held_subjects)
    is_held = np.array([subject in held for subject in subjects], dtype=bool)
    return np.flatnonzero(~is_held), np.flatnonzero(is_held)


def corpus_balanced_weights(labels: np.ndarray, corpora: Sequence[str], class_power: float,
                            corpus_power: float) -> np.ndarray:
    """Per-sample loss weights, mean 1: classes balanced within each corpus by `class_power` (as class_weights),
    and each corpus's total weight scaled by (n / corpus size) ** corpus_power, so that a large corpus (FER2013)
    does not drown small ones (0 = corpora count by their size, 1 = every corpus counts the same)."""
    labels, corpora = np.asarray(labels), np.asarray(corpora)
    weights = np.zeros(len(labels), dtype=np.float64)
    for corpus in np.unique(corpora):
        members = np.flatnonzero(corpora == corpus)
        within = class_weights(labels[members], class_power)[labels[members]]
        weights[members] = within * (len(labels) / len(members)) ** corpus_power
    return (weights / weights.mean()).astype(np.float32)


def class_weights(labels: np.ndarray, power: float) -> np.ndarray:
    """Per-class loss weights (n / count) ** power, mean 1 over the samples: 0 = none, 1 = fully balanced."""
    counts = np.bincount(labels, minlength=len(LABELS)).astype(np.float64)
    weights = np.where(counts > 0, (counts.sum() / np.maximum(counts, 1)) ** power, 0.0)
    return (weights / (weights[labels].mean())).astype(np.float32)


def augmenter(strength: float, erase_probability: float, seed: int) -> keras.Sequential:
    """Random flips, rotation, shift, zoom, brightness, contrast and occlusion of [0, 1] gray faces."""
    return keras.Sequential(
        [
            keras.layers.RandomFlip("horizontal", seed=seed),
            keras.layers.RandomRotation(0.05 * strength, fill_mode="nearest", seed=seed + 1),
            keras.layers.RandomTranslation(0.1 * strength, 0.1 * strength, fill_mode="nearest", seed=seed + 2),
            keras.layers.RandomZoom(0.15 * strength, fill_mode="nearest", seed=seed + 3),
            keras.layers.RandomBrightness(0.2 * strength, value_range=(0.0, 1.0), seed=seed + 4),
            keras.layers.RandomContrast(0.3 * strength, value_range=(0.0, 1.0), seed=seed + 5),
            keras.layers.RandomErasing(factor=erase_probability, scale=(0.02, 0.15), fill_value=0.5,
                                       value_range=(0.0, 1.0), seed=seed + 6),
        ],
        name="augmentation",
    )


def training_dataset(
    x: np.ndarray, y: np.ndarray, sample_weights: np.ndarray, batch_size: int, augment: keras.Sequential, seed: int
) -> tf.data.Dataset:
    """Shuffled, augmented batches of (image, one-hot label, sample weight), reshuffled every epoch."""
    if len(sample_weights) != len(x):
        raise ValueError(f"{len(sample_weights)} sample weights for {len(x)} images: give one weight per image")
    one_hot = np.eye(len(LABELS), dtype=np.float32)[y]
    return (
        tf.data.Dataset.from_tensor_slices((x, one_hot, sample_weights.astype(np.float32)))
        .shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
        .batch(batch_size)
        .map(lambda images, labels, w: (augment(images, training=True), labels, w),
             num_parallel_calls=tf.data.AUTOTUNE)
        .prefetch(tf.data.AUTOTUNE)
    )
