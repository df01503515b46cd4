import subprocess
import sys

import pytest

from fusion_service.config import Settings, env_name, options_table, parse_settings


def test_defaults_match_the_original_systems_weights():
    settings = parse_settings([], environ={})
    assert settings == Settings()
    assert (settings.video_weight, settings.audio_weight) == (0.7, 0.3)
    assert settings.port == 50051


def test_environment_sets_defaults_and_flags_win():
    environ = {"FUSION_PORT": "6000", "FUSION_AUDIO_MODEL_TARGET": "models:9000", "FUSION_VIDEO_WEIGHT": "0.5"}
    settings = parse_settings(["--port", "7000"], environ=environ)
    assert settings.port == 7000
    assert settings.audio_model_target == "models:9000"
    assert settings.video_weight == 0.5


def test_bad_environment_value_is_reported_by_name(capsys):
    with pytest.raises(SystemExit):
        parse_settings([], environ={"FUSION_PORT": "many"})
    assert "FUSION_PORT" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [
    ["--audio-weight", "-1"], ["--audio-weight", "0", "--video-weight", "0"], ["--port", "70000"], ["--face-detector", "dlib"],
    ["--model-retries", "5"], ["--model-retry-backoff-s", "0.001"], ["--video-weight", "nan"],
])
def test_invalid_settings_are_refused(argv, capsys):
    with pytest.raises(SystemExit):
        parse_settings(argv, environ={})
    assert "error" in capsys.readouterr().err


def test_every_option_is_documented():
    rows = options_table()
    assert len(rows) == len(Settings.__dataclass_fields__)
    for flag, env, _default, meaning in rows:
        assert flag.startswith("--") and env == env_name(flag[2:].replace("-", "_")) and meaning


def test_configuration_lists_the_face_detectors_without_importing_opencv():
    """Parsing flags must stay cheap: the detector names are data, apart from the detectors' code."""
    probe = "import sys, fusion_service.config; print('cv2' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


def test_help_lists_every_option(capsys):
    with pytest.raises(SystemExit) as exit_info:
        parse_settings(["--help"], environ={})
    assert exit_info.value.code == 0
    printed = capsys.readouterr().out
    assert all(flag in printed for flag, *_ in options_table())
