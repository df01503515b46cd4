import numpy as np
import pytest

from fusion_service.fusion import late_fusion

HAPPY = np.array([0, 0, 0, 1, 0, 0, 0], dtype=np.float32)
SAD = np.array([0, 0, 0, 0, 0, 1, 0], dtype=np.float32)


def test_weighted_mean_of_both_modalities():
    fused = late_fusion({"audio": SAD, "video": HAPPY}, {"audio": 0.3, "video": 0.7})
    np.testing.assert_allclose(fused.probabilities, 0.3 * SAD + 0.7 * HAPPY, atol=1e-6)
    assert fused.weights == pytest.approx({"audio": 0.3, "video": 0.7})


def test_weights_are_renormalised_when_they_do_not_sum_to_one():
    fused = late_fusion({"audio": SAD, "video": HAPPY}, {"audio": 1.0, "video": 3.0})
    np.testing.assert_allclose(fused.probabilities, 0.25 * SAD + 0.75 * HAPPY, atol=1e-6)


@pytest.mark.parametrize("missing", ["audio", "video"])
def test_one_missing_modality_leaves_the_other_in_full_charge(missing):
    scores = {"audio": SAD, "video": HAPPY}
    present = "video" if missing == "audio" else "audio"
    scores[missing] = None
    fused = late_fusion(scores, {"audio": 0.3, "video": 0.7})
    np.testing.assert_allclose(fused.probabilities, scores[present], atol=1e-6)
    assert fused.weights == {present: 1.0, missing: 0.0}


def test_no_scores_give_no_answer_rather_than_the_first_label():
    fused = late_fusion({"audio": None, "video": None}, {"audio": 0.3, "video": 0.7})
    assert fused.probabilities is None
    assert fused.weights == {"audio": 0.0, "video": 0.0}


def test_a_zero_weight_modality_does_not_contribute():
    fused = late_fusion({"audio": SAD, "video": HAPPY}, {"audio": 0.0, "video": 1.0})
    np.testing.assert_allclose(fused.probabilities, HAPPY, atol=1e-6)
    assert late_fusion({"audio": SAD, "video": None}, {"audio": 0.0, "video": 1.0}).probabilities is None


def test_result_is_a_distribution():
    rng = np.random.default_rng(0)
    a, v = rng.dirichlet(np.ones(7)), rng.dirichlet(np.ones(7))
    fused = late_fusion({"audio": a, "video": v}, {"audio": 0.3, "video": 0.7})
    assert fused.probabilities.dtype == np.float32
    assert fused.probabilities.sum() == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize("weight", [-0.1, float("nan"), float("inf")])
def test_invalid_weights_are_refused(weight):
    with pytest.raises(ValueError, match="fusion weight"):
        late_fusion({"audio": SAD, "video": HAPPY}, {"audio": weight, "video": 0.7})
