"""The live page in a real browser: Debian's Chromium with fake camera and microphone fed from files, through
the gateway, against the whole stack."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
import soundfile

from scripts.local_stack import free_port
from testkit.media import face_photo, speech
from testkit.waiting import WAIT_S

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
PAGE_WAIT_MS = WAIT_S * 1000


def write_y4m(path: Path, frame_bgr: np.ndarray, frames: int = 10, fps: int = 10) -> None:
    """A raw video file of one frame repeated: the format Chromium's fake camera reads."""
    height, width = frame_bgr.shape[:2]
    planes = cv2.cvtColor(frame_bgr, cv2.COLOR_BGR2YUV_I420).tobytes()
    with open(path, "wb") as out:
        out.write(f"YUV4MPEG2 W{width} H{height} F{fps}:1 Ip A1:1 C420jpeg\n".encode())
        for _ in range(frames):
            out.write(b"FRAME\n" + planes)


def camera_frame() -> np.ndarray:
    """The face photo's head and shoulders filling a 640x480 frame, as a webcam at a desk shows a person."""
    return cv2.resize(face_photo()[0:300, 90:490], (640, 480))


@pytest.fixture(scope="module")
def fake_devices(tmp_path_factory) -> tuple[Path, Path]:
    if not Path(CHROMIUM).exists():
        raise RuntimeError("Chromium is missing: install it with `apt-get install chromium` (.ci/run does)")
    folder = tmp_path_factory.mktemp("fake-devices")
    video, audio = folder / "camera.y4m", folder / "microphone.wav"
    write_y4m(video, camera_frame())
    soundfile.write(audio, speech(), 16000, subtype="PCM_16")
    return video, audio


def start_gateway(fusion_target: str, log: Path) -> tuple[subprocess.Popen, str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "capture_client.web", "--port", "0", "--target", fusion_target],
        stdout=subprocess.PIPE, stderr=open(log, "wb"), text=True,
    )
    line = process.stdout.readline()
    match = re.search(r"(http://\S+)", line)
    assert match, f"the gateway did not print its address: {line!r} (log: {log})"
    return process, match.group(1)


@pytest.fixture
def browser(fake_devices) -> Iterator:
    from playwright.sync_api import sync_playwright

    video, audio = fake_devices
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=[
            "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
            f"--use-file-for-fake-video-capture={video}", f"--use-file-for-fake-audio-capture={audio}",
        ])
        yield launched
        launched.close()


def test_page_streams_camera_and_microphone_and_survives_a_service_restart(start_fusion, browser, tmp_path):
    stack = start_fusion()
    gateway, address = start_gateway(stack.fusion_target, tmp_path / "gateway.log")
    try:
        page = browser.new_page()
        page.goto(address)
        page.click("#start")
        # Results with the face and the voice used, drawn: the emoji, the indicators and all three bar groups.
        page.wait_for_selector("#face.on", timeout=PAGE_WAIT_MS)
        page.wait_for_selector("#speech.on", timeout=PAGE_WAIT_MS)
        assert page.text_content("#top-emotion") in {"angry", "disgust", "fear", "happy", "neutral", "sad", "surprise"}
        assert page.text_content("#emoji") != "·"
        for group in ("fused", "video", "audio"):
            widths = page.eval_on_selector_all(f"#bars-{group} [data-label]", "bars => bars.map(b => parseFloat(b.style.width))")
            assert len(widths) == 7 and abs(sum(widths) - 100) < 1.5, (group, widths)
        assert "connected" in page.get_attribute("#connection", "class")
        assert page.evaluate("document.getElementById('overlay').width") == 640  # boxes drawn over the sent frame

        stack.processes["fusion"].kill()
        stack.processes["fusion"].wait()
        page.wait_for_selector("#connection.reconnecting", timeout=PAGE_WAIT_MS)
        stack.restart("fusion")
        page.wait_for_selector("#connection.connected", timeout=PAGE_WAIT_MS)
        page.evaluate("document.getElementById('face').classList.remove('on')")
        page.wait_for_selector("#face.on", timeout=PAGE_WAIT_MS)  # results flow again, on the same page
        assert page.is_hidden("#error")
    finally:
        gateway.terminate()
        gateway.wait(timeout=10)


def test_page_says_clearly_when_the_camera_is_refused(start_fusion, fake_devices, tmp_path):
    from playwright.sync_api import sync_playwright

    stack = start_fusion()
    gateway, address = start_gateway(stack.fusion_target, tmp_path / "gateway.log")
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--use-fake-device-for-media-stream",
                                                                                   "--deny-permission-prompts"])
            page = browser.new_page()
            page.goto(address)
            page.click("#start")
            page.wait_for_selector("#error:not([hidden])", timeout=PAGE_WAIT_MS)
            assert "refused" in page.text_content("#error")
            assert page.text_content("#start") == "Start"  # nothing started; the user can try again
            browser.close()
    finally:
        gateway.terminate()
        gateway.wait(timeout=10)
