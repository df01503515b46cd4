"""The issue's recording: someone sitting back from the camera (a frontal face about 70 px wide in 640x480), in view
most of the time and away for a stretch, analysed by `emotion-capture analyze` against the real system."""

from __future__ import annotations

import csv

import pytest

from capture_client.__main__ import main
from tests.client.videos import DISTANT_FACE_AWAY_S, distant_face_frame, write_video

SECONDS = 16.0


@pytest.fixture(scope="module")
def distant_face_video(tmp_path_factory):
    return write_video(tmp_path_factory.mktemp("media") / "distant_face.mp4", SECONDS, fps=10, frame_at=distant_face_frame)


def test_a_distant_face_is_found_in_nearly_every_window_it_is_in_view_and_no_face_when_away(
    stack, distant_face_video, tmp_path
):
    out = tmp_path / "analysis"
    assert main(["analyze", str(distant_face_video), "--out", str(out), "--outputs", "csv", "--mode", "video",
                 "--target", stack.fusion_target]) == 0
    with open(out / "timeline.csv", newline="") as file:
        rows = list(csv.DictReader(file))
    away_from, away_until = DISTANT_FACE_AWAY_S
    # The frame shown at a window's time is the one the 10 fps video holds then: keep clear of the two cuts.
    in_view = [row for row in rows if float(row["time_s"]) < away_from - 0.15 or float(row["time_s"]) >= away_until + 0.15]
    away = [row for row in rows if away_from + 0.15 <= float(row["time_s"]) < away_until - 0.15]
    assert len(in_view) >= 20 and len(away) >= 6
    found = [row["video_status"] == "USED" for row in in_view]
    assert sum(found) >= 0.9 * len(in_view), [row["time_s"] for row, hit in zip(in_view, found) if not hit]
    assert all(row["video_status"] == "NO_FACE" for row in away), [(row["time_s"], row["video_status"]) for row in away]
