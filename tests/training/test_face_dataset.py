"""Hold-out splits, class weights and augmentation of face crops."""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.ml

import tensorflow as tf

from training.face_dataset import augmenter, class_weights, stratified_holdout, subject_holdout, training_dataset  # noqa: E402


def test_stratified_holdout_takes_the_fraction_of_every_class_and_is_repeatable():
    labels = np.repeat(np.arange(7), [400, 40, 400, 700, 500, 480, 320])

    train, held = stratified_holdout(labels, 0.1, seed=3)

    assert len(np.intersect1d(train, held)) == 0 and len(train) + len(held) == len(labels)
    np.testing.assert_array_equal(np.bincount(labels[held]), [40, 4, 40, 70, 50, 48, 32])
    np.testing.assert_array_equal(stratified_holdout(labels, 0.1, seed=3)[1], held)
    assert not np.array_equal(stratified_holdout(labels, 0.1, seed=4)[1], held)


def test_subject_holdout_keeps_every_subject_on_one_side():
    subjects = [f"S{i % 20:03d}" for i in range(200)]

    train, held = subject_holdout(subjects, 0.25, seed=1)

    train_subjects = {subjects[i] for i in train}
    held_subjects = {subjects[i] for i in held}
    assert len(held_subjects) == 5 and not train_subjects & held_subjects
    assert len(train) + len(held) == len(subjects)


def test_class_weights_balance_classes_at_power_one_and_are_uniform_at_zero():
    labels = np.repeat(np.arange(7), [100, 10, 100, 200, 100, 100, 50])

    balanced = class_weights(labels, 1.0)
    per_class_total = np.bincount(labels, weights=balanced[labels])
    np.testing.assert_allclose(per_class_total, per_class_total[0], rtol=1e-5)
    np.testing.assert_allclose(balanced[labels].mean(), 1.0, rtol=1e-5)
    np.testing.assert_allclose(class_weights(labels, 0.0), 1.0)


def test_augmentation_keeps_shape_and_range_and_changes_images():
    images = np.random.default_rng(0).random((16, 48, 48, 1), dtype=np.float32)

    augmented = np.asarray(augmenter(1.0, 0.5, seed=0)(images, training=True))

    assert augmented.shape == images.shape
    assert augmented.min() >= 0.0 and augmented.max() <= 1.0
    assert not np.allclose(augmented, images)


def test_training_dataset_yields_augmented_batches_with_one_hot_labels_and_weights():
    x = np.random.default_rng(1).random((10, 48, 48, 1), dtype=np.float32)
    y = np.array([0, 1, 2, 3, 4, 5, 6, 0, 3, 3], dtype=np.int32)
    weights = class_weights(y, 1.0)

    batches = list(training_dataset(x, y, weights, 4, augmenter(1.0, 0.0, seed=0), seed=0))

    assert [len(images) for images, _, _ in batches] == [4, 4, 2]
    labels = np.concatenate([one_hot for _, one_hot, _ in batches])
    sample_weights = np.concatenate([w for _, _, w in batches])
    assert sorted(labels.argmax(axis=1)) == sorted(y)
    np.testing.assert_allclose(sorted(sample_weights), sorted(weights[y]), rtol=1e-6)
