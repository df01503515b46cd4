"""python -m bench.stream_levels refuses levels it could not judge."""

from __future__ import annotations

import pytest

from bench import live
from bench.stream_levels import parse_args
from protos.emotion.v1.constants import MAX_AUDIO_CHUNK_SECONDS


def test_levels_shorter_than_the_warm_up_and_two_lag_windows_are_refused(capsys):
    shortest = live.WARMUP_SECONDS + 2 * live.EDGE_SECONDS
    assert parse_args(["--streams", "4", "12", "--hold-seconds", str(shortest)]).streams == [4, 12]
    with pytest.raises(SystemExit):
        parse_args(["--hold-seconds", str(shortest - 1)])
    assert "--hold-seconds must be at least" in capsys.readouterr().err


def test_a_level_needs_at_least_one_stream(capsys):
    with pytest.raises(SystemExit):
        parse_args(["--streams", "0"])
    assert "--streams must be at least 1" in capsys.readouterr().err


def test_audio_chunks_are_100_ms_by_default_as_our_clients_send_and_never_longer_than_the_service_takes(capsys):
    assert parse_args([]).audio_chunk_seconds == 0.1
    assert parse_args(["--audio-chunk-seconds", "0.02"]).audio_chunk_seconds == 0.02
    with pytest.raises(SystemExit):
        parse_args(["--audio-chunk-seconds", str(MAX_AUDIO_CHUNK_SECONDS * 2)])
    assert "--audio-chunk-seconds must be above 0" in capsys.readouterr().err
