"""The shared smoother (protos/emotion/v1/smoothing.py) that streams and `analyze` both use."""

from __future__ import annotations

import numpy as np
import pytest

from protos.emotion.v1.smoothing import RESTART_AFTER_GAP_S, Smoother

HAPPY = np.array([0.02, 0.02, 0.02, 0.8, 0.1, 0.02, 0.02])
SAD = np.array([0.02, 0.02, 0.02, 0.1, 0.02, 0.8, 0.02])


def top(p) -> int:
    return int(np.argmax(p))


def test_a_steady_answer_comes_out_as_it_went_in():
    smoother = Smoother(1.0)
    for i in range(20):
        out = smoother.update(i * 0.2, HAPPY)
    np.testing.assert_allclose(out, HAPPY, rtol=1e-5)
    assert out.dtype == np.float32 and out.sum() == pytest.approx(1.0)


def test_a_single_flicker_does_not_change_the_top_emotion():
    smoother = Smoother(1.0)
    for i in range(10):
        smoother.update(i * 0.2, HAPPY)
    assert top(smoother.update(2.0, SAD)) == 3
    assert top(smoother.update(2.2, HAPPY)) == 3


def test_a_lasting_change_is_followed_after_about_the_time_constant():
    smoother = Smoother(1.0)
    for i in range(10):
        smoother.update(i * 0.2, HAPPY)
    changed_at = next(t for t in np.arange(2.0, 6.0, 0.2) if top(smoother.update(t, SAD)) == 5)
    # The top emotion changes when the new answer's share 1 - exp(-dt / tau) outweighs the old one's margin:
    # here at share 0.64, dt = 1.02 s, the first result at or after it on the 0.2 s grid.
    assert changed_at - 1.8 == pytest.approx(1.2, abs=1e-6)


def test_the_weight_of_the_past_depends_on_time_not_on_the_number_of_answers():
    fast, slow = Smoother(1.0), Smoother(1.0)
    fast.update(0.0, HAPPY)
    slow.update(0.0, HAPPY)
    for t in np.arange(0.1, 1.01, 0.1):
        fast_out = fast.update(t, SAD)
    slow_out = slow.update(1.0, SAD)
    np.testing.assert_allclose(fast_out, slow_out, rtol=1e-4)


def test_no_smoothing_gives_each_answer_as_it_is():
    smoother = Smoother(0.0)
    smoother.update(0.0, HAPPY)
    np.testing.assert_allclose(smoother.update(0.2, SAD), SAD, rtol=1e-5)


def test_restart_forgets_the_past():
    smoother = Smoother(5.0)
    smoother.update(0.0, HAPPY)
    smoother.restart()
    np.testing.assert_allclose(smoother.update(0.2, SAD), SAD, rtol=1e-5)


def test_a_gap_without_answers_restarts_but_a_short_pause_does_not():
    smoother = Smoother(5.0)
    smoother.update(0.0, HAPPY)
    assert smoother.update(0.5, None) is None  # a moment without an answer: none is invented
    assert top(smoother.update(1.0, SAD)) == 3  # within the gap: the past still counts
    np.testing.assert_allclose(smoother.update(1.0 + RESTART_AFTER_GAP_S + 0.1, SAD), SAD, rtol=1e-5)


def test_a_zero_probability_does_not_veto_a_label_for_ever():
    smoother = Smoother(1.0)
    smoother.update(0.0, np.eye(7)[3])
    for t in np.arange(0.2, 3.0, 0.2):
        out = smoother.update(t, np.eye(7)[5])
    assert top(out) == 5


@pytest.mark.parametrize("time_constant_s", [-1.0, 31.0, float("nan")])
def test_an_impossible_time_constant_is_refused(time_constant_s):
    with pytest.raises(ValueError, match="between 0"):
        Smoother(time_constant_s)


def test_time_going_backwards_is_refused():
    smoother = Smoother(1.0)
    smoother.update(1.0, HAPPY)
    with pytest.raises(ValueError, match="increasing times"):
        smoother.update(0.5, HAPPY)
