"""Fitting and reporting halves: by class for FER2013 (no subject ids), by whole subject for CK+48."""

import numpy as np
import pytest

pytestmark = pytest.mark.ml

from training.validation_halves import audio_parts, stratified_parts, subject_parts  # noqa: E402


def test_stratified_parts_halve_every_class_and_split_the_fitting_half_in_two():
    labels = np.repeat(np.arange(7), 40)
    parts = stratified_parts(labels)
    for label in range(7):
        counts = np.bincount(parts[labels == label], minlength=3)
        assert counts[2] == 20 and counts[0] == counts[1] == 10


def test_subject_parts_keep_each_subject_on_one_side():
    subjects = [f"S{i // 5}" for i in range(100)]
    parts = subject_parts(subjects)
    for subject in set(subjects):
        assert len({parts[i] for i, s in enumerate(subjects) if s == subject}) == 1
    assert set(parts) == {0, 1, 2}
    assert abs(np.mean(parts == 2) - 0.5) <= 0.05


def test_audio_parts_fit_on_the_first_half_of_each_corpus_and_report_on_the_rest():
    parts = audio_parts({"ravdess": ("r17", "r18", "r19", "r20"), "urdu": ("u1", "u2", "u3", "u4", "u5", "u6"),
                         "turevdb": ("t1",)})
    assert parts == {"r17": 0, "r18": 1, "r19": 2, "r20": 2,
                     "u1": 0, "u2": 1, "u3": 0, "u4": 2, "u5": 2, "u6": 2,
                     "t1": 2}  # one speaker cannot be both fitted on and reported on
