"""Training tests. Those that need TensorFlow are marked `ml` and run in the TensorFlow environment
(`make test` runs `.venv-ml/bin/python -m pytest -m ml tests/model_server tests/training`). In an
environment without TensorFlow they are not collected at all (they could not even be imported);
the loader and metric tests run in both.
"""

import importlib.util

if importlib.util.find_spec("tensorflow") is None:
    collect_ignore = [
        "test_audio_eval.py",
        "test_audio_training.py",
        "test_export.py",
        "test_face_alignment.py",
        "test_face_dataset.py",
        "test_video_training.py",
        "test_validation_halves.py",
        "test_calibrate.py",
        "test_test_time_flips.py",
        "test_cross_fit.py",
    ]
