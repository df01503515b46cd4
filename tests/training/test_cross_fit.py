"""The cross-fitting CLI's cache of raw answers: what is read back is what the model answered."""

import numpy as np
import pytest

pytestmark = pytest.mark.ml

from training.calibration import CrossFitData  # noqa: E402
from training.cross_fit import load_raw, save_raw  # noqa: E402


def test_raw_answers_round_trip_through_the_cache(tmp_path):
    rng = np.random.default_rng(0)
    data = CrossFitData([rng.random((3, 7)), rng.random((1, 7)), rng.random((2, 7))], np.array([0, 3, 5]),
                        np.array(["nemo", "nemo", "urdu"]), np.array(["nemo:EB0", "nemo:TP0", "urdu:SM1"]),
                        np.array([0, 2, 1]))
    save_raw(tmp_path / "raw.npz", data)
    again = load_raw(tmp_path / "raw.npz")
    for stored, original in zip(again.samples, data.samples, strict=True):
        np.testing.assert_array_equal(stored, original)
    for field in ("labels", "corpora", "groups", "parts"):
        assert getattr(again, field).tolist() == getattr(data, field).tolist()
