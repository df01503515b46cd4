"""The steadiness measurement's definitions, on hand-made answers (no stack)."""

from __future__ import annotations

import numpy as np
import pytest

from bench.steadiness import Result, changes_per_minute, first_delay, follow_delay, resmoothed, sway
from protos.emotion.v1.constants import LABELS


def result(t: float, top: str) -> Result:
    instant = np.full(len(LABELS), 0.05)
    instant[LABELS.index(top)] = 0.7
    return Result(received_s=t, frame_sequence=0, instant=instant, instant_top=top, smoothed_top=top)


def test_changes_per_minute_count_changes_between_answers_and_skip_results_without_one():
    assert changes_per_minute(["happy", "happy", "sad", "", "sad", "happy"], seconds=30) == 4.0
    assert changes_per_minute(["", ""], seconds=60) == 0.0


def test_a_change_is_followed_when_the_new_emotion_is_named_for_good_not_when_first_named():
    results = [result(t, top) for t, top in [(0.5, "neutral"), (1.2, "happy"), (1.4, "neutral"), (1.6, "happy"), (1.8, "happy")]]
    tops = [r.instant_top for r in results]
    assert follow_delay(results, tops, switch_sent_s=1.0, target="happy") == pytest.approx(0.6)
    assert first_delay(results, tops, switch_sent_s=1.0, target="happy") == pytest.approx(0.2)
    assert follow_delay(results, tops[:3], switch_sent_s=1.0, target="happy") is None


def test_replaying_without_smoothing_gives_the_instant_answers_and_with_it_fewer_changes():
    tops = ["happy", "sad"] * 10
    results = [result(0.2 * i, top) for i, top in enumerate(tops)]
    assert resmoothed(results, 0.0) == tops
    assert changes_per_minute(resmoothed(results, 1.0), 4.0) < changes_per_minute(tops, 4.0)


def test_the_sway_moves_the_picture_a_little_and_keeps_its_size():
    image = np.zeros((100, 120, 3), np.uint8)
    image[40:60, 50:70] = 255
    moved = sway(image, 1.0)
    assert moved.shape == image.shape and not np.array_equal(moved, image)
    assert abs(int(moved.sum()) - int(image.sum())) < 0.2 * int(image.sum())
