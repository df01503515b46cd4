"""The printed table and results.json, from a made-up run."""

from __future__ import annotations

import json

from bench.report import TARGETS, table, target_report, write_json


def summary(median: float, p99: float, runs: int = 100) -> dict:
    return {"median": median, "p99": p99, "runs": runs}


def made_up_results() -> dict:
    stage = {"count": 10, "mean_ms": 2.0, "p50_ms": 1.5, "p99_ms": 4.0}
    return {
        "git": {"commit": "0123456789abcdef", "dirty": True},
        "machine": {"cores": 2, "cpu_model": "Test CPU"},
        "load_average_start": [1.0, 1.0, 1.0],
        "load_average_end": [1.5, 1.0, 1.0],
        "duration_s": 600.0,
        "figures": {
            "features_ms": summary(0.3, 0.5), "features_baseline_ms": summary(3.0, 3.5),
            "speech_ms": summary(0.5, 0.6), "stream_audio_ms": summary(0.7, 0.9), "decode_ms": summary(0.6, 0.7), "face_ms": summary(8.0, 9.0),
            "face_720p_ms": summary(8.5, 9.5),
            "features_speedup": 10.0,
            "predict_ms": {"audio": summary(1.4, 1.7), "video": summary(1.0, 1.2)},
            "fuse_p50_ms": 12.0, "fuse_p99_ms": 45.0, "fuse_runs": 200,
            "stream_latency_p50_ms": 20.0, "stream_latency_p99_ms": 60.0,
            "streams_sustained": 6,
            "cold_start_s": summary(13.0, 14.0, 3),
            "rss_mb": {"fusion": 160.0, "model-server": 650.0},
            "gateway": {
                "direct_latency_ms": {"median": 30.0, "p99": 60.0, "runs": 400},
                "gateway_latency_ms": {"median": 33.5, "p99": 70.0, "runs": 400},
                "added_p50_ms": 3.5,
                "concurrent": {"streams": 8, "held": False, "streams_held": 0, "reasons": ["results at 3.1/s"],
                               "gateway_cpu_ms_per_stream_s": 4.2},
            },
        },
        "details": {
            "stream_latency": {"frames_included": 150},
            "cold_starts": [{"serving_s": 13.0, "audio_model_ready_s": 9.5, "video_model_ready_s": None}],
            "fuse_cpu_ms_per_call": {"fusion": 9.5, "audio-model-server": 1.1},
            "service_metrics": {"fuse": {"stages": {"total": stage}, "modality_results": {"video:USED": 10},
                                         "rpc_errors": {}, "dropped_frames": 0, "repeated_frames": {}}},
            "streams": {"definition": "holds = ...", "most_tried": 16, "levels": [{
                "streams": 8, "held": False, "reasons": ["lag grew by 80 ms"], "lag_first_ms": 60.0,
                "lag_last_ms": 140.0, "lag_p99_ms": 300.0, "min_results_per_s": 4.9,
                "cpu_cores_used": {"fusion": 1.2}, "cpu_ms_per_result": {"fusion": 30.0, "model-server": 9.5},
            }]},
        },
    }


def test_targets_are_judged_against_their_bounds():
    judged = {t["figure"]: t["met"] for t in target_report(made_up_results()["figures"])}
    assert judged == {
        "fuse_p50_ms": True, "fuse_p99_ms": False, "stream_latency_p50_ms": True, "streams_sustained": False,
        "cold_start_s.median": False, "features_speedup": True, "rss_mb.fusion": True, "rss_mb.model-server": False,
        "gateway.added_p50_ms": True, "gateway.concurrent.streams_held": False,
    }
    assert len(judged) == len(TARGETS)


def test_a_missing_figure_is_neither_met_nor_missed():
    assert {t["met"] for t in target_report({})} == {None}


def test_the_table_shows_each_figure_its_target_and_the_search():
    text = table(made_up_results())
    for expected in ("features_baseline_ms", "predict_ms audio", "fuse_ms", "stream_latency_ms", "streams_sustained",
                     "cold_start_s", "rss_mb fusion", "0123456789ab (uncommitted changes)", "2 cores, Test CPU"):
        assert expected in text
    fuse_row = next(line for line in text.splitlines() if line.startswith("fuse_ms"))
    assert "<= 12  met" in fuse_row and "<= 40  MISSED" in fuse_row
    assert ">= 32  MISSED" in next(line for line in text.splitlines() if line.startswith("streams_sustained"))
    assert "<= 450  MISSED" in next(line for line in text.splitlines() if line.startswith("rss_mb model-server"))
    assert "8 streams: fails: lag grew by 80 ms" in text
    assert "service stages, fuse" in text
    assert "CPU time per Fuse call (ms): fusion 9.50" in text
    assert "audio model ready 9.5, video model ready -, SERVING 13.0" in text
    gateway_row = next(line for line in text.splitlines() if line.startswith("gateway_added_latency_ms"))
    assert "<= 5  met" in gateway_row and "33.5 ms through the gateway, 30.0 ms direct" in gateway_row
    held_row = next(line for line in text.splitlines() if line.startswith("gateway_streams_held"))
    assert ">= 8  MISSED" in held_row and "fails: results at 3.1/s" in held_row


def test_results_json_carries_the_figures_and_the_targets(tmp_path):
    path = tmp_path / "out" / "results.json"
    write_json(made_up_results(), path)
    written = json.loads(path.read_text())
    assert written["figures"]["fuse_p50_ms"] == 12.0
    assert written["machine"]["cores"] == 2 and written["git"]["commit"] == "0123456789abcdef"
    assert {t["figure"] for t in written["targets"]} >= {"fuse_p50_ms", "streams_sustained"}
