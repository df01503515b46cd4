"""The service never writes audio, frames or face crops to disk or logs: a whole session (Fuse with encoded
and raw images, a live stream, a malformed request) under an audit hook, at DEBUG log level, then the
file system and the log are searched for any trace of the media."""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import grpc
import pytest

from protos.emotion.v1 import emotion_pb2 as pb
from protos.emotion.v1 import emotion_pb2_grpc
from scripts.local_stack import ROOT, free_port
from testkit.media import face_photo
from testkit.waiting import WAIT_S, wait_for
from tests.integration.helpers import fuse_request
from tests.integration.live_stream import LiveStream

# Not searched: environments, dependencies and model files, which other processes may be writing.
_SKIPPED_DIRS = {".venv", ".venv-ml", "node_modules", ".git", "model_repository", "runs", "__pycache__"}
_LONGEST_LOG_LINE = 1000


def traces(blob: bytes, count: int = 4, size: int = 24) -> list[str]:
    """Ways pieces of `blob` would show in a file: as they are, escaped, in hex, in base64. Only pieces
    with many different bytes are used, so that no trace could turn up by chance (a run of zeros)."""
    varied = [start for start in range(0, len(blob) - size, size) if len(set(blob[start:start + size])) >= size // 2]
    assert len(varied) >= count, "the media has too little variety to be traced"
    found = []
    for start in varied[:: max(1, len(varied) // count)][:count]:
        piece = blob[start:start + size]
        found += [piece.decode("latin-1"), repr(piece)[2:-1], piece.hex()]
        aligned = start // 3 * 3
        found.append(base64.b64encode(blob[aligned:aligned + size]).decode())
    return found


def changed_files(root: Path, since: float) -> list[Path]:
    changed = []
    for directory, subdirectories, files in os.walk(root):
        subdirectories[:] = [d for d in subdirectories if d not in _SKIPPED_DIRS]
        for name in files:
            path = Path(directory) / name
            try:
                if path.stat().st_mtime >= since and path.stat().st_size < 50_000_000:
                    changed.append(path)
            except OSError:
                pass  # removed meanwhile by another process
    return changed


def test_a_session_leaves_no_media_on_disk_or_in_the_logs(model_servers, tmp_path):
    workdir, tmpdir = tmp_path / "cwd", tmp_path / "tmp"
    workdir.mkdir()
    tmpdir.mkdir()
    report, log_path = tmp_path / "writes.json", tmp_path / "fusion.log"
    port = free_port()
    started = time.time()
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [
                sys.executable, "-m", "tests.integration.audited_fusion", str(report),
                "--host=127.0.0.1", f"--port={port}", "--metrics-port=0", "--log-level=DEBUG",
                f"--audio-model-target={model_servers.model_target('audio')}",
                f"--video-model-target={model_servers.model_target('video')}",
            ],
            cwd=workdir, stdout=log, stderr=subprocess.STDOUT,
            env={**os.environ, "TMPDIR": str(tmpdir), "PYTHONPATH": str(ROOT), "PYTHONDONTWRITEBYTECODE": "1"},
        )
    try:
        request = fuse_request()
        photo = face_photo()
        raw = pb.RawFrame(width=photo.shape[1], height=photo.shape[0], format=pb.BGR8, data=photo.tobytes())
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            fusion = emotion_pb2_grpc.EmotionFusionStub(channel)

            def answers() -> bool:
                try:
                    return fusion.Fuse(request, timeout=10).video.status == pb.USED
                except grpc.RpcError:
                    return False

            wait_for(answers, "the service to answer", interval_s=0.5)
            reply = fusion.Fuse(request, metadata=(("x-request-id", "privacy-fuse"),), timeout=WAIT_S)
            assert reply.audio.status == pb.USED and reply.video.status == pb.USED
            assert fusion.Fuse(pb.FuseRequest(image=pb.Image(raw=raw)), timeout=WAIT_S).video.status == pb.USED
            odd_audio = pb.Audio(encoding=pb.PCM_S16LE, sample_rate_hz=16000, data=request.audio.data[:-1])
            with pytest.raises(grpc.RpcError) as error:
                fusion.Fuse(pb.FuseRequest(audio=odd_audio), timeout=WAIT_S)
            assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            stream = LiveStream(channel, metadata=(("x-request-id", "privacy-stream"),))
            stream.wait_for(lambda r: r.result.video.status == pb.USED, "a stream result with a face")
            stream.close()
        process.send_signal(signal.SIGTERM)
        assert process.wait(WAIT_S) == 0
    finally:
        if process.poll() is None:
            process.kill()

    assert json.loads(report.read_text()) == [], "the service wrote files"
    assert not any(workdir.iterdir()) and not any(tmpdir.iterdir()), "the service left files in its directories"

    log = log_path.read_text(errors="replace")
    assert "request_id=privacy-fuse" in log and "request_id=privacy-stream" in log, "the log misses request ids"
    assert max(len(line) for line in log.splitlines()) <= _LONGEST_LOG_LINE
    media_traces = traces(request.audio.data) + traces(request.image.encoded) + traces(raw.data)
    assert not [t for t in media_traces if t in log], "media found in the log"

    for path in changed_files(ROOT, started) + changed_files(tmp_path, started):
        if path in (log_path, report):
            continue
        content = path.read_bytes().decode("latin-1")
        assert not [t for t in media_traces if t in content], f"media found in {path}"
