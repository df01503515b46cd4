"""The service's per-request CPU work, timed in this process without gRPC: audio features (ours and the
original librosa recipe, in the same run), speech detection, a stream's audio per result, JPEG decoding, face
detection + crop."""

from __future__ import annotations

import cv2
import numpy as np

from bench.media import Media, face_pipeline
from bench.stats import Summary, summarise, time_calls
from fusion_service.features.audio import HOP_LENGTH, N_CHROMA, N_FFT, N_MELS, N_MFCC, SAMPLE_RATE, AudioFeatureExtractor
from fusion_service.features.audio_stream import StreamingAudio
from fusion_service.features.speech import SpeechDetector

STREAM_RESULT_SECONDS = 0.2  # the service's default result rate, 5 a second


def librosa_recipe(window: np.ndarray) -> np.ndarray:
    """The original system's way to the same [126, 98] features: five separate librosa calls, each with
    its own STFT (run here on our window, rate and STFT settings, so that only the method differs)."""
    import librosa  # only the baseline needs it: the service itself never imports librosa

    stft = dict(n_fft=N_FFT, hop_length=HOP_LENGTH)
    mfcc = librosa.feature.mfcc(y=window, sr=SAMPLE_RATE, n_mfcc=N_MFCC, n_mels=N_MELS, **stft)
    chroma = librosa.feature.chroma_stft(y=window, sr=SAMPLE_RATE, n_chroma=N_CHROMA, tuning=0.0, **stft)
    zcr = librosa.feature.zero_crossing_rate(window, frame_length=N_FFT, hop_length=HOP_LENGTH)
    rms = librosa.feature.rms(y=window, frame_length=N_FFT, hop_length=HOP_LENGTH)
    mel = librosa.feature.melspectrogram(y=window, sr=SAMPLE_RATE, n_mels=N_MELS, **stft)
    log_mel = librosa.power_to_db(mel, ref=1.0, amin=1e-10, top_db=None)
    return np.concatenate([mfcc, chroma, zcr, rms, log_mel]).T.astype(np.float32)


def run(media: Media, runs: int, baseline_runs: int) -> dict[str, Summary]:
    """Milliseconds per call of each piece, median and p99 over `runs` calls (`baseline_runs` for librosa)."""
    window = media.speech_window
    extractor = AudioFeatureExtractor()
    detector = SpeechDetector()
    faces = face_pipeline()
    jpeg = np.frombuffer(media.frame_jpeg, dtype=np.uint8)
    frame, hd_frame = media.frame_decoded, media.hd_frame_decoded

    ours, theirs = extractor(window), librosa_recipe(window)
    if ours.shape != theirs.shape:
        raise RuntimeError(f"baseline features {theirs.shape} do not match ours {ours.shape}: fix librosa_recipe")
    for name, image in (("640x480", frame), ("1280x720", hd_frame)):
        boxes, _ = faces.faces(image)
        if len(boxes) != 1:
            raise RuntimeError(
                f"the {name} benchmark frame should show exactly one face to the detector, it found {len(boxes)}"
            )

    return {
        "features_ms": summarise(time_calls(lambda: extractor(window), runs, warmup=20)),
        "stream_audio_ms": summarise(time_calls(stream_result_audio(media.speech, extractor, detector), runs, warmup=20)),
        "features_baseline_ms": summarise(time_calls(lambda: librosa_recipe(window), baseline_runs, warmup=3)),
        "speech_ms": summarise(time_calls(lambda: detector.is_speech(window), runs, warmup=20)),
        "decode_ms": summarise(time_calls(lambda: cv2.imdecode(jpeg, cv2.IMREAD_COLOR), runs, warmup=20)),
        "face_ms": summarise(time_calls(lambda: faces.faces(frame), runs, warmup=5)),
        "face_720p_ms": summarise(time_calls(lambda: faces.faces(hd_frame), runs, warmup=5)),
    }


def stream_result_audio(speech: np.ndarray, extractor: AudioFeatureExtractor, detector: SpeechDetector):
    """One call per stream result: 0.2 s more of looping speech, then the model's input for the latest window (speech
    and features, made as the audio arrives), as a stream at 5 results a second asks for it."""
    stream = StreamingAudio(extractor, detector, SAMPLE_RATE)
    step = round(STREAM_RESULT_SECONDS * SAMPLE_RATE)
    looped = np.tile(speech, 2)
    position = 0

    def result() -> None:
        nonlocal position
        stream.append(looped[position:position + step])
        position = (position + step) % len(speech)
        stream.prepared(stream.snapshot(), max_seconds=10.0)

    stream.append(looped[: 2 * SAMPLE_RATE])  # a whole window first: the stream's steady state
    return result
