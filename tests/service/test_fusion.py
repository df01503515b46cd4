import numpy as np
import pytest

from fusion_service.fusion import (
    FUSION_FUNCTIONS,
    LogisticFusion,
    confidence_weighted,
    fuse,
    learned_logistic,
    learned_parameters,
    product_of_experts,
    weighted_sum,
)

HAPPY = np.array([0, 0, 0, 1, 0, 0, 0], dtype=np.float32)
SAD = np.array([0, 0, 0, 0, 0, 1, 0], dtype=np.float32)
UNIFORM = np.full(7, 1 / 7, dtype=np.float32)
METHODS = sorted(FUSION_FUNCTIONS)


def soft(index: int, top: float) -> np.ndarray:
    p = np.full(7, (1 - top) / 6)
    p[index] = top
    return p.astype(np.float32)


def test_weighted_mean_of_both_modalities():
    fused = weighted_sum({"audio": SAD, "video": HAPPY}, {"audio": 0.3, "video": 0.7})
    np.testing.assert_allclose(fused.probabilities, 0.3 * SAD + 0.7 * HAPPY, atol=1e-6)
    assert fused.weights == pytest.approx({"audio": 0.3, "video": 0.7})


def test_weights_are_renormalised_when_they_do_not_sum_to_one():
    fused = weighted_sum({"audio": SAD, "video": HAPPY}, {"audio": 1.0, "video": 3.0})
    np.testing.assert_allclose(fused.probabilities, 0.25 * SAD + 0.75 * HAPPY, atol=1e-6)


def test_product_of_experts_is_the_renormalised_weighted_geometric_mean():
    audio, video = soft(5, 0.6), soft(3, 0.5)
    fused = product_of_experts({"audio": audio, "video": video}, {"audio": 0.3, "video": 0.7})
    expected = audio.astype(np.float64) ** 0.3 * video.astype(np.float64) ** 0.7
    np.testing.assert_allclose(fused.probabilities, expected / expected.sum(), atol=1e-6)
    assert fused.weights == pytest.approx({"audio": 0.3, "video": 0.7})


def test_product_of_experts_lets_agreement_add_up():
    # both lean to happy: the product is surer than either, the mean is not
    audio, video = soft(3, 0.4), soft(3, 0.4)
    product = product_of_experts({"audio": audio, "video": video}, {"audio": 0.5, "video": 0.5})
    assert product.probabilities[3] == pytest.approx(0.4, abs=1e-6)  # equal weights of one distribution: itself
    unequal = product_of_experts({"audio": soft(3, 0.4), "video": soft(3, 0.8)}, {"audio": 1, "video": 1})
    assert unequal.probabilities[3] > 0.6


def test_confidence_weighted_follows_the_sure_modality():
    fused = confidence_weighted({"audio": UNIFORM, "video": soft(3, 0.9)}, {"audio": 0.7, "video": 0.3})
    assert fused.weights["video"] > 0.99  # a uniform answer says nothing, whatever its fixed weight
    assert int(np.argmax(fused.probabilities)) == 3
    even = confidence_weighted({"audio": soft(5, 0.9), "video": soft(3, 0.9)}, {"audio": 0.3, "video": 0.7})
    assert even.weights == pytest.approx({"audio": 0.3, "video": 0.7})  # equally sure: the fixed weights


def test_learned_logistic_applies_its_coefficients_to_log_probabilities():
    identity = LogisticFusion({"audio": np.eye(7), "video": 2 * np.eye(7)}, np.zeros(7), {})
    audio, video = soft(5, 0.6), soft(3, 0.5)
    fused = learned_logistic({"audio": audio, "video": video}, {"audio": 0.3, "video": 0.7}, parameters=identity)
    expected = audio.astype(np.float64) * video.astype(np.float64) ** 2
    np.testing.assert_allclose(fused.probabilities, expected / expected.sum(), atol=1e-5)
    assert fused.weights == pytest.approx({"audio": 1 / 3, "video": 2 / 3})


def test_learned_parameters_round_trip_through_json(tmp_path):
    rng = np.random.default_rng(0)
    parameters = LogisticFusion({"audio": rng.normal(size=(7, 7)), "video": rng.normal(size=(7, 7))},
                                rng.normal(size=7), {"audio": 2, "video": 2})
    parameters.to_json(tmp_path / "p.json")
    loaded = LogisticFusion.from_json(tmp_path / "p.json")
    np.testing.assert_allclose(loaded.coefficients["video"], parameters.coefficients["video"])
    np.testing.assert_allclose(loaded.intercept, parameters.intercept)
    assert loaded.fitted_for == {"audio": 2, "video": 2}


def test_broken_learned_parameters_say_how_to_refit(tmp_path):
    (tmp_path / "p.json").write_text("{}")
    with pytest.raises(ValueError, match="refit them with python -m training.fusion_eval"):
        LogisticFusion.from_json(tmp_path / "p.json")


def test_the_shipped_learned_fusion_names_the_model_versions_it_was_fitted_for():
    parameters = learned_parameters()
    assert {"audio_model_version", "video_model_version"} <= set(parameters.fitted_for)
    fused = learned_logistic({"audio": soft(5, 0.6), "video": soft(5, 0.7)}, {"audio": 0.3, "video": 0.7})
    assert int(np.argmax(fused.probabilities)) == 5


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("missing", ["audio", "video"])
def test_one_missing_modality_leaves_the_other_in_full_charge(method, missing):
    scores = {"audio": soft(5, 0.6), "video": soft(3, 0.7)}
    present = "video" if missing == "audio" else "audio"
    scores[missing] = None
    fused = fuse(method, scores, {"audio": 0.3, "video": 0.7})
    np.testing.assert_allclose(fused.probabilities, scores[present], atol=1e-6)
    assert fused.weights == {present: 1.0, missing: 0.0}


@pytest.mark.parametrize("method", METHODS)
def test_no_scores_give_no_answer_rather_than_the_first_label(method):
    fused = fuse(method, {"audio": None, "video": None}, {"audio": 0.3, "video": 0.7})
    assert fused.probabilities is None
    assert fused.weights == {"audio": 0.0, "video": 0.0}


@pytest.mark.parametrize("method", METHODS)
def test_a_zero_weight_modality_does_not_contribute(method):
    fused = fuse(method, {"audio": SAD, "video": soft(3, 0.7)}, {"audio": 0.0, "video": 1.0})
    np.testing.assert_allclose(fused.probabilities, soft(3, 0.7), atol=1e-6)
    assert fuse(method, {"audio": SAD, "video": None}, {"audio": 0.0, "video": 1.0}).probabilities is None


@pytest.mark.parametrize("method", METHODS)
def test_result_is_a_distribution(method):
    rng = np.random.default_rng(0)
    a, v = rng.dirichlet(np.ones(7)), rng.dirichlet(np.ones(7))
    fused = fuse(method, {"audio": a, "video": v}, {"audio": 0.3, "video": 0.7})
    assert fused.probabilities.dtype == np.float32
    assert fused.probabilities.sum() == pytest.approx(1.0, abs=1e-6)
    assert sum(fused.weights.values()) == pytest.approx(1.0)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("weight", [-0.1, float("nan"), float("inf")])
def test_invalid_weights_are_refused(method, weight):
    with pytest.raises(ValueError, match="fusion weight"):
        fuse(method, {"audio": SAD, "video": HAPPY}, {"audio": weight, "video": 0.7})


def test_an_unknown_method_is_refused_with_the_known_ones():
    with pytest.raises(ValueError, match="unknown fusion method 'mean'; choose one of weighted_sum"):
        fuse("mean", {"audio": SAD, "video": HAPPY}, {"audio": 0.3, "video": 0.7})
