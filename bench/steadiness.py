"""How steady live answers are, and how fast they follow a real change: instant against smoothed.

Streams recordings made at run time through StreamFuse in real time, on a local stack with the trained models,
and reads each result's instant answer (instant_top_emotion) beside its smoothed one (result.top_emotion):
- steady: a webcam-like photograph that sways a little (shift and rotation) with speech and pauses, for
  top-emotion changes per minute;
- expression: one performer's face changing expression in place (the posed Taiwanese faces, read from
  --faces at run time), face only: the delay from the first changed frame sent to the answer that shows the
  new expression and keeps it;
- person: one performer, then another in another place: the stream follows the new face and its smoothing
  restarts, so the answer should follow about as fast as the instant one.
The instant answers of the first two are then smoothed again offline with the shared smoother
(protos/emotion/v1/smoothing.py) for other time constants, which is how the default was chosen.

    .venv/bin/python -m bench.steadiness [--json FILE]   (FILE holds answers on corpus faces: keep it out of the repository)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import cv2
import grpc
import numpy as np

from bench.media import CHUNK_SECONDS, webcam_frame
from protos.emotion.v1 import emotion_pb2 as pb
from protos.emotion.v1 import emotion_pb2_grpc
from protos.emotion.v1.constants import AUDIO_SAMPLE_RATE_HZ, LABELS
from protos.emotion.v1.smoothing import DEFAULT_TIME_CONSTANT_S, Smoother
from scripts.local_stack import ROOT, LocalStack, free_port
from testkit.media import jpeg, pcm16, speech

FPS = 15.0
STEADY_SECONDS = 60.0  # the webcam photograph
AMBIGUOUS_SECONDS = 40.0  # each face the model is least sure of
AMBIGUOUS_FACES = 3
SWITCH_AT_S = 8.0
SWITCH_SECONDS = 16.0
PAUSE_SECONDS = 1.5  # silence after each spoken sentence
TIME_CONSTANTS_S = (0.0, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0)
FACES = ROOT.parent / "shared" / "datasets" / "faces" / "taiwanese" / "faces_256x256"
# Expression letters of the Taiwanese file names (PPTVEnn.jpg), as the corpus documents them.
EXPRESSIONS = {"a": "neutral", "b": "happy", "c": "sad", "d": "angry", "e": "disgust", "f": "fear", "g": "surprise"}
FRAME_SIZE = (640, 480)
FACE_SIDE = 300  # pixels of a face on the frame: well within the face detector's range


@dataclass(frozen=True)
class Recording:
    name: str
    frames: list[bytes]  # JPEG, one every 1 / FPS s
    audio: np.ndarray | None  # float32 at 16 kHz
    options: pb.FusionOptions
    switch_frame: int | None = None  # index of the first changed frame


@dataclass(frozen=True)
class Result:
    received_s: float  # since the first frame was sent
    frame_sequence: int
    instant: np.ndarray | None
    instant_top: str
    smoothed_top: str


def sway(image: np.ndarray, t: float) -> np.ndarray:
    """The image as a person in front of a webcam holds still: a few pixels of drift, a degree or two of tilt."""
    height, width = image.shape[:2]
    angle = 1.5 * np.sin(2 * np.pi * t / 4.9)
    matrix = cv2.getRotationMatrix2D((width / 2, height / 2), angle, 1.0)
    matrix[:, 2] += (6 * np.sin(2 * np.pi * t / 3.7), 4 * np.sin(2 * np.pi * t / 5.3))
    return cv2.warpAffine(image, matrix, (width, height), borderMode=cv2.BORDER_REFLECT)


def speech_with_pauses(seconds: float) -> np.ndarray:
    sentence = speech()
    unit = np.concatenate([sentence, np.zeros(int(PAUSE_SECONDS * AUDIO_SAMPLE_RATE_HZ), np.float32)])
    return np.tile(unit, int(np.ceil(seconds * AUDIO_SAMPLE_RATE_HZ / len(unit))))[: int(seconds * AUDIO_SAMPLE_RATE_HZ)]


def steady_recording(name: str, photo: np.ndarray, seconds: float) -> Recording:
    frames = [jpeg(sway(photo, i / FPS)) for i in range(int(seconds * FPS))]
    return Recording(name, frames, speech_with_pauses(seconds), pb.FusionOptions())


def on_frame(face: np.ndarray, x: int) -> np.ndarray:
    """A face photograph on a plain background, FACE_SIDE wide, its left edge at column x."""
    frame = np.full((FRAME_SIZE[1], FRAME_SIZE[0], 3), 110, np.uint8)
    top = (FRAME_SIZE[1] - FACE_SIDE) // 2
    frame[top:top + FACE_SIDE, x:x + FACE_SIDE] = cv2.resize(face, (FACE_SIDE, FACE_SIDE), interpolation=cv2.INTER_CUBIC)
    return frame


def switch_recording(name: str, before: np.ndarray, after: np.ndarray) -> Recording:
    count, switch = int(SWITCH_SECONDS * FPS), int(SWITCH_AT_S * FPS)
    frames = [jpeg(sway(before if i < switch else after, i / FPS)) for i in range(count)]
    return Recording(name, frames, None, pb.FusionOptions(modalities=[pb.VIDEO]), switch_frame=switch)


def face_files(folder: Path) -> dict[tuple[str, str], Path]:
    """(performer, expression) -> its first front-view image."""
    files: dict[tuple[str, str], Path] = {}
    for path in sorted(folder.glob("*.jpg")):
        match = re.fullmatch(r"(\d\d)\d1([a-g])\d\d", path.stem)
        if match:
            files.setdefault((match[1], EXPRESSIONS[match[2]]), path)
    return files


@dataclass(frozen=True)
class FaceAnswer:
    performer: str
    expression: str  # the corpus's label
    answer: str  # the face model's
    confidence: float
    image: np.ndarray


def face_answers(fuse, folder: Path) -> list[FaceAnswer]:
    """What the service answers for each performer's first image of each expression, shown as in the recordings."""
    answers = []
    for (performer, expression), path in face_files(folder).items():
        image = cv2.imread(str(path))
        reply = fuse(pb.FuseRequest(image=pb.Image(encoded=jpeg(on_frame(image, 170))),
                                    options=pb.FusionOptions(modalities=[pb.VIDEO])), timeout=30)
        if reply.video.status == pb.USED:
            answers.append(FaceAnswer(performer, expression, reply.top_emotion, reply.top_probability, image))
    return answers


def expression_pair(answers: list[FaceAnswer]) -> tuple[FaceAnswer, FaceAnswer, FaceAnswer]:
    """Two expressions of one performer, and another performer's face of a third, each named correctly by the face
    model with confidence >= 0.6: so that each change is one the model sees."""
    sure = sorted((a for a in answers if a.answer == a.expression and a.confidence >= 0.6), key=lambda a: -a.confidence)
    for performer in sorted({a.performer for a in sure}):
        own = [a for a in sure if a.performer == performer]
        if len(own) >= 2:
            others = [a for a in sure if a.performer != performer and a.expression not in (own[0].expression, own[1].expression)]
            if others:
                return own[0], own[1], others[0]
    raise SystemExit("no performer has two expressions (and no other performer a third) that the face model names "
                     "with confidence >= 0.6")


def ambiguous_faces(answers: list[FaceAnswer], count: int) -> list[FaceAnswer]:
    """The faces the model is least sure of, one per performer: where a live answer flickers."""
    chosen: dict[str, FaceAnswer] = {}
    for a in sorted(answers, key=lambda a: a.confidence):
        chosen.setdefault(a.performer, a)
    return list(chosen.values())[:count]


async def stream(target: str, recording: Recording) -> tuple[list[Result], list[float]]:
    """The recording sent in real time (frames at FPS, audio in 100 ms chunks, as our clients send it); results as they come, and the
    time each frame was sent, both from the first frame."""
    chunk = round(CHUNK_SECONDS * AUDIO_SAMPLE_RATE_HZ)
    sent: list[float] = []
    results: list[Result] = []
    start = time.monotonic()

    async def requests():
        yield pb.StreamRequest(config=pb.StreamConfig(audio_sample_rate_hz=AUDIO_SAMPLE_RATE_HZ, options=recording.options))
        events = [(i / FPS, "frame", i) for i in range(len(recording.frames))]
        if recording.audio is not None:
            events += [(j * CHUNK_SECONDS, "audio", j) for j in range(len(recording.audio) // chunk)]
        for due, kind, index in sorted(events):
            await asyncio.sleep(max(0.0, start + due - time.monotonic()))
            if kind == "frame":
                sent.append(time.monotonic() - start)
                yield pb.StreamRequest(frame=pb.Frame(image=pb.Image(encoded=recording.frames[index]), sequence=index + 1))
            else:
                yield pb.StreamRequest(audio=pb.AudioChunk(data=pcm16(recording.audio[index * chunk:(index + 1) * chunk])))

    async with grpc.aio.insecure_channel(target) as channel:
        async for response in emotion_pb2_grpc.EmotionFusionStub(channel).StreamFuse(requests()):
            instant = {s.label: s.probability for s in response.instant_fused}
            results.append(Result(
                received_s=time.monotonic() - start,
                frame_sequence=response.frame_sequence,
                instant=np.array([instant[label] for label in LABELS]) if instant else None,
                instant_top=response.instant_top_emotion,
                smoothed_top=response.result.top_emotion,
            ))
    return results, sent


def resmoothed(results: list[Result], time_constant_s: float) -> list[str]:
    """The top emotions the stream would have given with another time constant."""
    smoother = Smoother(time_constant_s)
    tops = []
    for r in results:
        smoothed = smoother.update(r.received_s, r.instant)
        tops.append("" if smoothed is None else LABELS[int(np.argmax(smoothed))])
    return tops


def changes_per_minute(tops: list[str], seconds: float) -> float:
    """Changes of the top emotion from one answer to the next (results without an answer skipped)."""
    answered = [t for t in tops if t]
    return sum(a != b for a, b in zip(answered, answered[1:])) * 60.0 / seconds


def follow_delay(results: list[Result], tops: list[str], switch_sent_s: float, target: str) -> float | None:
    """Seconds from sending the first changed frame to the first answer that names `target` and keeps it to the
    end of the recording; None when the last answer does not name it."""
    later = [(r.received_s, top) for r, top in zip(results, tops) if r.received_s >= switch_sent_s]
    for index, (received, top) in enumerate(later):
        if all(t == target for _, t in later[index:]):
            return received - switch_sent_s
    return None


def first_delay(results: list[Result], tops: list[str], switch_sent_s: float, target: str) -> float | None:
    """Seconds from sending the first changed frame to the first answer that names `target`, kept or not."""
    return next((r.received_s - switch_sent_s for r, top in zip(results, tops) if r.received_s >= switch_sent_s and top == target), None)


def measure_switch(results: list[Result], sent: list[float], recording: Recording, tops: list[str]) -> dict:
    after = [r.instant_top for r in results if r.frame_sequence > recording.switch_frame + FPS]
    target = Counter(after).most_common(1)[0][0]
    before = Counter(r.instant_top for r in results if r.frame_sequence <= recording.switch_frame).most_common(1)[0][0]
    switch_sent = sent[recording.switch_frame]
    return {"from": before, "to": target, "delay_s": follow_delay(results, tops, switch_sent, target),
            "first_s": first_delay(results, tops, switch_sent, target)}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.steadiness", description=__doc__.split("\n\n")[0])
    parser.add_argument("--faces", type=Path, default=FACES, help="folder of the posed Taiwanese face crops (default: %(default)s)")
    parser.add_argument("--repository", type=Path, default=ROOT / "model_repository")
    parser.add_argument("--json", type=Path, help="write the figures here too")
    return parser.parse_args(argv)


def summarise(recording: Recording, results: list[Result], sent: list[float]) -> dict:
    """Live figures (instant and smoothed), and for the steady and expression recordings the figures the
    instant answers give when smoothed again with each of TIME_CONSTANTS_S."""
    instant = [r.instant_top for r in results]
    smoothed = [r.smoothed_top for r in results]
    replayed = resmoothed(results, DEFAULT_TIME_CONSTANT_S)
    summary: dict = {
        "results": len(results),
        # How well replaying the instant answers reproduces the stream's own smoothing (restarts aside).
        "replay_agreement": round(float(np.mean([a == b for a, b in zip(replayed, smoothed)])), 3),
        # The instant answers themselves, to smooth again in other ways: [seconds, probabilities or None].
        "answers": [[round(r.received_s, 4), None if r.instant is None else [round(float(p), 5) for p in r.instant]]
                    for r in results],
    }
    if recording.switch_frame is None:
        seconds = len(recording.frames) / FPS
        summary["minutes"] = seconds / 60
        summary["changes_per_minute"] = {"instant": changes_per_minute(instant, seconds),
                                         "smoothed": changes_per_minute(smoothed, seconds)}
        summary["by_time_constant"] = {f"{tau:g}": changes_per_minute(resmoothed(results, tau), seconds) for tau in TIME_CONSTANTS_S}
        summary["top_emotions"] = dict(Counter(instant).most_common())
    else:
        summary["instant"] = measure_switch(results, sent, recording, instant)
        summary["smoothed"] = measure_switch(results, sent, recording, smoothed)
        if recording.name == "expression":
            summary["by_time_constant"] = {
                f"{tau:g}": measure_switch(results, sent, recording, resmoothed(results, tau))["delay_s"] for tau in TIME_CONSTANTS_S
            }
    return summary


def pooled_steadiness(report: dict) -> dict:
    """Changes per minute over all steady recordings together (each weighted by its length)."""
    steady = [r for name, r in report.items() if name.startswith("steady_")]
    minutes = sum(r["minutes"] for r in steady)

    def pooled(rates: list[float], weights: list[float]) -> float:
        return sum(rate * weight for rate, weight in zip(rates, weights)) / minutes

    weights = [r["minutes"] for r in steady]
    return {
        "minutes": minutes,
        "results": sum(r["results"] for r in steady),
        "changes_per_minute": {kind: pooled([r["changes_per_minute"][kind] for r in steady], weights)
                               for kind in ("instant", "smoothed")},
        "by_time_constant": {tau: pooled([r["by_time_constant"][tau] for r in steady], weights)
                             for tau in steady[0]["by_time_constant"]},
    }


def print_table(report: dict) -> None:
    steady = report["steady"]
    print(f"\nsteady recordings ({steady['minutes']:.1f} min, {steady['results']} results): top-emotion changes per minute")
    print(f"  live: instant {steady['changes_per_minute']['instant']:.1f}, smoothed "
          f"(tau {report['service_time_constant_s']:g} s) {steady['changes_per_minute']['smoothed']:.1f}")
    expression = report.get("expression")
    print("  tau (s)   changes/min" + ("   expression named for good after (s)" if expression else ""))
    for tau, changes in steady["by_time_constant"].items():
        delay = expression["by_time_constant"][tau] if expression else None
        shown = "" if not expression else ("never" if delay is None else f"{delay:.2f}")
        print(f"  {tau:>7}   {changes:11.1f}   {shown}")
    for name in ("expression", "person"):
        if name in report:
            r = report[name]
            print(f"{name} switch {r['instant']['from']} -> {r['instant']['to']}: named for good after instant "
                  f"{_seconds(r['instant']['delay_s'])}, smoothed {_seconds(r['smoothed']['delay_s'])}; first named "
                  f"after instant {_seconds(r['instant']['first_s'])}, smoothed {_seconds(r['smoothed']['first_s'])}")


def _seconds(value: float | None) -> str:
    return "never" if value is None else f"{value:.2f} s"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    model_port = free_port()
    stack = LocalStack(args.repository, audio_port=model_port, video_port=model_port, fusion_port=free_port())
    report: dict = {"service_time_constant_s": DEFAULT_TIME_CONSTANT_S, "fps": FPS}
    with stack:
        stack.wait_serving(timeout_s=300)
        recordings = [steady_recording("steady_webcam", webcam_frame(), STEADY_SECONDS)]
        with grpc.insecure_channel(stack.fusion_target) as channel:
            probe = emotion_pb2_grpc.EmotionFusionStub(channel).Fuse(pb.FuseRequest(
                audio=pb.Audio(encoding=pb.PCM_S16LE, sample_rate_hz=AUDIO_SAMPLE_RATE_HZ, data=pcm16(speech(2.0))),
                image=pb.Image(encoded=jpeg(webcam_frame()))), timeout=30)
            report["models"] = {"audio": probe.audio.model_version, "video": probe.video.model_version}
            if args.faces.is_dir():
                answers = face_answers(emotion_pb2_grpc.EmotionFusionStub(channel).Fuse, args.faces)
                before, after, other = expression_pair(answers)
                report["faces"] = {"expression": [f"{before.performer} {before.expression}", f"{after.performer} {after.expression}"],
                                   "person": [f"{before.performer} {before.expression}", f"{other.performer} {other.expression}"]}
                for face in ambiguous_faces(answers, AMBIGUOUS_FACES):
                    recordings.append(steady_recording(f"steady_{face.performer}_{face.expression}",
                                                       on_frame(face.image, 170), AMBIGUOUS_SECONDS))
                recordings.append(switch_recording("expression", on_frame(before.image, 170), on_frame(after.image, 170)))
                recordings.append(switch_recording("person", on_frame(before.image, 20), on_frame(other.image, 320)))
            else:
                print(f"{args.faces} is missing: only the webcam photograph is measured")
        for recording in recordings:
            results, sent = asyncio.run(stream(stack.fusion_target, recording))
            report[recording.name] = summarise(recording, results, sent)
            print(recording.name, json.dumps({k: v for k, v in report[recording.name].items() if k != "answers"}), flush=True)
    report["steady"] = pooled_steadiness(report)
    print_table(report)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
