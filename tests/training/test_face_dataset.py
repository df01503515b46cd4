"""Hold-out splits, class weights and augmentation of face crops."""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.ml

import tensorflow as tf

from training.face_dataset import (  # noqa: E402
    augmenter,
    class_weights,
    corpus_balanced_weights,
    named_holdout,
    stratified_holdout,
    subject_holdout,
    training_dataset,
)


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
    weights = class_weights(y, 1.0)[y]

    batches = list(training_dataset(x, y, weights, 4, augmenter(1.0, 0.0, seed=0), seed=0))

    assert [len(images) for images, _, _ in batches] == [4, 4, 2]
    labels = np.concatenate([one_hot for _, one_hot, _ in batches])
    sample_weights = np.concatenate([w for _, _, w in batches])
    assert sorted(labels.argmax(axis=1)) == sorted(y)
    np.testing.assert_allclose(sorted(sample_weights), sorted(weights), rtol=1e-6)


def test_named_holdout_holds_out_exactly_the_listed_performers():
    performers = ["01", "05", "07", "10", "05", "12", "10"]

    train, held = named_holdout(performers, ("05", "10"))

    np.testing.assert_array_equal(held, [1, 3, 4, 6])
    np.testing.assert_array_equal(train, [0, 2, 5])


def test_corpus_balanced_weights_give_each_corpus_its_share_and_balance_classes_within_it():
    labels = np.concatenate([np.repeat([0, 3], [900, 2700]), np.repeat([0, 3], [50, 50])])
    corpora = np.array(["big"] * 3600 + ["small"] * 100)

    weights = corpus_balanced_weights(labels, corpora, class_power=1.0, corpus_power=1.0)

    np.testing.assert_allclose(weights.mean(), 1.0, rtol=1e-5)
    totals = {c: weights[corpora == c].sum() for c in ("big", "small")}
    np.testing.assert_allclose(totals["big"], totals["small"], rtol=1e-5)  # power 1: corpora count the same
    big = corpora == "big"
    np.testing.assert_allclose(weights[big & (labels == 0)].sum(), weights[big & (labels == 3)].sum(), rtol=1e-5)

    by_size = corpus_balanced_weights(labels, corpora, class_power=0.0, corpus_power=0.0)
    np.testing.assert_allclose(by_size, 1.0, rtol=1e-6)  # power 0: every face counts the same

    halfway = corpus_balanced_weights(labels, corpora, class_power=0.0, corpus_power=0.5)
    share = halfway[~big].sum() / halfway.sum()
    np.testing.assert_allclose(share, np.sqrt(100) / (np.sqrt(100) + np.sqrt(3600)), rtol=1e-5)
