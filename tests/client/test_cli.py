"""The command line: device listing, flag checks, and errors that say what to do."""

from __future__ import annotations

import pytest

import capture_client.analyze
from capture_client.__main__ import main


def test_list_devices_lists_cameras_and_microphones(capsys):
    assert main(["--list-devices"]) == 0
    out = capsys.readouterr().out.splitlines()
    cameras, microphones = out.index("cameras (--camera INDEX):"), out.index("microphones (--microphone INDEX or NAME):")
    assert cameras < microphones
    # Each device (or 'none found') on its own indented line under its heading.
    assert all(line.startswith("  ") for line in out[cameras + 1:microphones] + out[microphones + 1:])
    assert len(out) >= 4


def test_a_result_rate_beyond_the_services_limit_is_refused(capsys):
    with pytest.raises(SystemExit):
        main(["--result-rate", "100", "--no-window"])
    assert "at most 30 results per second" in capsys.readouterr().err


def test_a_missing_camera_ends_the_command_with_advice(capsys):
    assert main(["--no-window", "--mode", "video", "--camera", "/nonexistent/video.mp4", "--target", "127.0.0.1:1"]) == 2
    assert "could not open camera '/nonexistent/video.mp4'" in capsys.readouterr().err


def test_analyze_without_a_service_says_how_to_start_one_and_writes_nothing(speech_wav, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(capture_client.analyze, "READY_TIMEOUT_S", 0.5)
    out = tmp_path / "out"
    assert main(["analyze", str(speech_wav), "--out", str(out), "--target", "127.0.0.1:1", "--no-progress"]) == 1
    assert "make run" in capsys.readouterr().err
    assert not out.exists()


def test_analyze_of_something_that_is_not_media_says_so(tmp_path, capsys):
    text = tmp_path / "notes.txt"
    text.write_text("not a recording")
    assert main(["analyze", str(text), "--out", str(tmp_path / "out"), "--target", "127.0.0.1:1"]) == 1
    assert f"cannot read {text}" in capsys.readouterr().err


def test_analyze_smooths_like_a_stream_by_default_and_refuses_an_impossible_time_constant(capsys, tmp_path):
    from capture_client.__main__ import analyze_parser
    from protos.emotion.v1.smoothing import DEFAULT_TIME_CONSTANT_S

    assert analyze_parser().parse_args(["x.mp4", "--out", str(tmp_path)]).smoothing_s == DEFAULT_TIME_CONSTANT_S
    assert analyze_parser().parse_args(["x.mp4", "--out", str(tmp_path), "--smoothing-s", "0"]).smoothing_s == 0.0
    with pytest.raises(SystemExit):
        main(["analyze", "x.mp4", "--out", str(tmp_path), "--smoothing-s", "-1"])
    assert "--smoothing-s: must be between 0 (no smoothing) and 30" in capsys.readouterr().err
