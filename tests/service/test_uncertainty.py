"""When an answer is uncertain, and why (protos/emotion/v1/uncertainty.py)."""

from __future__ import annotations

import numpy as np
import pytest

from protos.emotion.v1 import emotion_pb2 as pb
from protos.emotion.v1.uncertainty import confidence, modalities_disagree, uncertainty_reason

SURE_HAPPY = np.array([0.05, 0.0, 0.05, 0.7, 0.1, 0.05, 0.05])
SURE_SAD = np.array([0.05, 0.0, 0.05, 0.1, 0.05, 0.7, 0.05])
UNSURE_SAD = np.array([0.1, 0.1, 0.1, 0.2, 0.1, 0.3, 0.1])


def test_confidence_is_the_top_probability_and_zero_without_an_answer():
    assert confidence(SURE_HAPPY) == pytest.approx(0.7)
    assert confidence(None) == 0.0


def test_two_confident_modalities_naming_different_emotions_disagree():
    assert modalities_disagree(SURE_SAD, SURE_HAPPY, confident_above=0.5)


@pytest.mark.parametrize(
    "audio, video",
    [(SURE_HAPPY, SURE_HAPPY), (UNSURE_SAD, SURE_HAPPY), (SURE_SAD, None), (None, SURE_HAPPY)],
    ids=["same emotion", "one unsure", "no face", "no voice"],
)
def test_no_disagreement_unless_both_are_confident_of_different_emotions(audio, video):
    assert not modalities_disagree(audio, video, confident_above=0.5)


def test_confident_means_at_least_the_threshold():
    assert modalities_disagree(SURE_SAD, SURE_HAPPY, confident_above=0.7)
    assert not modalities_disagree(SURE_SAD, SURE_HAPPY, confident_above=0.71)


def test_reasons_disagreement_before_low_confidence_and_none_when_sure():
    assert uncertainty_reason(0.3, disagree=True, uncertain_below=0.4) == pb.MODALITIES_DISAGREE
    assert uncertainty_reason(0.39, disagree=False, uncertain_below=0.4) == pb.LOW_CONFIDENCE
    assert uncertainty_reason(0.4, disagree=False, uncertain_below=0.4) == pb.UNCERTAINTY_REASON_UNSPECIFIED
