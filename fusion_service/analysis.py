"""From decoded audio and image to a fused answer: the service's core, free of gRPC plumbing.

The CPU work (features, face detection) runs in a thread pool so the event loop stays free;
the two model servers are called concurrently.
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import Executor
from dataclasses import dataclass, field

import numpy as np

from fusion_service.decoding import InvalidInput, decode_image
from fusion_service.face_tracking import main_face
from fusion_service.features.audio import N_FEATURES, N_FRAMES, AudioFeatureExtractor
from fusion_service.features.audio_input import AudioInput, pool_window_probabilities, prepare_audio
from fusion_service.features.audio_stream import Snapshot, StreamingAudio
from fusion_service.features.faces.boxes import Box
from fusion_service.features.faces.crop import FACE_SIZE
from fusion_service.features.faces.names import DEFAULT_DETECTOR
from fusion_service.features.faces.pipeline import FacePipeline, make_detector
from fusion_service.features.faces.search import StreamFaceSearch
from fusion_service.features.speech import SpeechDetector
from fusion_service.fusion import check_weights
from fusion_service.fusion_methods import (
    DEFAULT_METHOD,
    EXPLICIT_WEIGHTS_METHOD,
    METHODS,
    applicable_method,
    method_name,
    method_value,
)
from fusion_service.metrics import MODALITY_RESULTS, Stage, timed
from fusion_service.model_client import ModelClient, ModelContract, ModelError
from protos.emotion.v1 import emotion_pb2 as pb
from protos.emotion.v1.constants import LABELS

log = logging.getLogger(__name__)
from protos.emotion.v1.uncertainty import (
    DEFAULT_CONFIDENT_ABOVE, DEFAULT_UNCERTAIN_BELOW, confidence, modalities_disagree, uncertainty_reason,
)


def audio_contract(model_name: str) -> ModelContract:
    return ModelContract(name=model_name, input_key="features", input_shape=(N_FRAMES, N_FEATURES))


def video_contract(model_name: str) -> ModelContract:
    return ModelContract(name=model_name, input_key="image", input_shape=(FACE_SIZE, FACE_SIZE, 1))


@dataclass(frozen=True)
class Options:
    audio_weight: float
    video_weight: float
    use_audio: bool = True
    use_video: bool = True
    method: str = DEFAULT_METHOD  # a key of fusion_methods.METHODS


@dataclass(frozen=True)
class UncertaintyRule:
    """The service's thresholds for calling an answer uncertain (see protos/emotion/v1/uncertainty.py)."""

    uncertain_below: float = DEFAULT_UNCERTAIN_BELOW
    confident_above: float = DEFAULT_CONFIDENT_ABOVE


def resolve_options(request: pb.FusionOptions, defaults: Options) -> Options:
    """Per-request options over the configured defaults, validated."""
    audio_weight = request.audio_weight if request.HasField("audio_weight") else defaults.audio_weight
    video_weight = request.video_weight if request.HasField("video_weight") else defaults.video_weight
    try:
        check_weights({"audio_weight": audio_weight, "video_weight": video_weight})
    except ValueError as error:
        raise InvalidInput(f"options: {error}") from None
    if request.method != pb.FUSION_METHOD_UNSPECIFIED:
        try:
            method = method_name(request.method)
        except ValueError as error:
            raise InvalidInput(f"options.method: {error}") from None
    elif request.HasField("audio_weight") or request.HasField("video_weight"):
        method = EXPLICIT_WEIGHTS_METHOD
    else:
        method = defaults.method
    modalities = set(request.modalities)
    unknown = modalities - {pb.AUDIO, pb.VIDEO}
    if unknown:
        names = ", ".join(pb.Modality.Name(m) if m in pb.Modality.values() else str(m) for m in sorted(unknown))
        raise InvalidInput(f"options.modalities may hold AUDIO and VIDEO only, got {names}")
    return Options(
        audio_weight=float(audio_weight),
        video_weight=float(video_weight),
        use_audio=not modalities or pb.AUDIO in modalities,
        use_video=not modalities or pb.VIDEO in modalities,
        method=method,
    )


@dataclass
class Outcome:
    """One modality's answer before it becomes a protobuf message."""

    status: int
    reason: str = ""
    probabilities: np.ndarray | None = None
    version: int = 0
    faces: list[pb.Face] = field(default_factory=list)
    primary_face: int = -1
    primary_box: Box | None = None  # for a stream to follow this face in its next frame


@dataclass(frozen=True)
class Faces:
    """The faces found in one image, as the video model takes them."""

    boxes: list[Box]  # largest first
    crops: np.ndarray  # float32 [len(boxes), 48, 48, 1]
    # Found by a search of the whole image (not only around a stream's last faces): the same pixels would
    # give the same faces again.
    whole_frame: bool


def _counted(modality: str, outcome: Outcome) -> Outcome:
    """Count each analysis once, where it ends: a stream builds responses again from cached outcomes."""
    MODALITY_RESULTS.labels(modality, pb.ModalityStatus.Name(outcome.status)).inc()
    return outcome


def emotion_scores(probabilities: np.ndarray) -> list[pb.EmotionScore]:
    return [pb.EmotionScore(label=label, probability=float(p)) for label, p in zip(LABELS, probabilities)]


def set_answer(response: pb.FuseResponse, probabilities: np.ndarray, disagree: bool) -> None:
    """Fill the fused answer (scores, top emotion, uncertainty) from its distribution, judged by the response's own
    uncertain_below: so a stream can replace an instant answer by its smoothed one and judge it alike."""
    top = int(np.argmax(probabilities))
    del response.fused[:]
    response.fused.extend(emotion_scores(probabilities))
    response.top_emotion = LABELS[top]
    response.top_probability = float(probabilities[top])
    response.uncertainty_reason = uncertainty_reason(response.top_probability, disagree, response.uncertain_below)
    response.uncertain = response.uncertainty_reason != pb.UNCERTAINTY_REASON_UNSPECIFIED


class Analyzer:
    def __init__(
        self,
        audio_client: ModelClient,
        video_client: ModelClient,
        executor: Executor,
        max_audio_seconds: float,
        face_detector: str = DEFAULT_DETECTOR,
        uncertainty: UncertaintyRule = UncertaintyRule(),
    ):
        self.audio_client = audio_client
        self.video_client = video_client
        self.uncertainty = uncertainty
        self.max_audio_seconds = max_audio_seconds
        self._executor = executor
        self._extractor = AudioFeatureExtractor()
        self._speech = SpeechDetector()
        self._faces = FacePipeline(make_detector(face_detector))
        self._unfitted_versions_logged: dict[str, int] | None = None

    async def _in_pool(self, stage: Stage, function, *args, **kwargs):
        """Run CPU work in the pool, timing the work itself: waiting for a thread is not the stage's cost."""

        def work():
            with timed(stage):
                return function(*args, **kwargs)

        return await asyncio.get_running_loop().run_in_executor(self._executor, work)

    async def audio(
        self, samples: np.ndarray | None, sample_rate: int, enabled: bool = True, deadline: float | None = None
    ) -> Outcome:
        return _counted("audio", await self._audio(samples, sample_rate, enabled, deadline))

    async def _audio(self, samples: np.ndarray | None, sample_rate: int, enabled: bool, deadline: float | None) -> Outcome:
        if not enabled:
            return Outcome(pb.DISABLED, "left out by options.modalities")
        if samples is None:
            return Outcome(pb.ABSENT, "the request carried no audio")
        prepared = await self._in_pool(
            Stage.FEATURES, prepare_audio, samples, sample_rate,
            extractor=self._extractor, detector=self._speech, max_seconds=self.max_audio_seconds,
        )
        return await self._predicted_audio(prepared, deadline)

    def streaming_audio(self, sample_rate: int) -> StreamingAudio:
        """A stream's own audio, featurised as it arrives (see features/audio_stream.py)."""
        return StreamingAudio(self._extractor, self._speech, sample_rate)

    async def stream_audio(
        self, audio: StreamingAudio, snapshot: Snapshot, enabled: bool = True, deadline: float | None = None
    ) -> Outcome:
        """The answer on a stream's latest window (a snapshot of `audio`, taken on the event loop)."""
        if not enabled:
            return _counted("audio", Outcome(pb.DISABLED, "left out by options.modalities"))
        prepared = await self._in_pool(Stage.FEATURES, audio.prepared, snapshot, self.max_audio_seconds)
        return _counted("audio", await self._predicted_audio(prepared, deadline))

    async def _predicted_audio(self, prepared: AudioInput, deadline: float | None) -> Outcome:
        if prepared.speech_windows == 0:
            return Outcome(pb.NO_SPEECH, f"no speech found in {prepared.windows} audio window(s)")
        try:
            with timed(Stage.PREDICT_AUDIO):
                prediction = await self.audio_client.predict(prepared.features, deadline)
        except ModelError as error:
            return Outcome(pb.MODEL_UNAVAILABLE, str(error))
        return Outcome(pb.USED, probabilities=pool_window_probabilities(prediction.probabilities), version=prediction.version)

    def face_search(self) -> StreamFaceSearch:
        """A stream's own face search: around its last faces first (see features/faces/search.py)."""
        return StreamFaceSearch(self._faces)

    async def video(
        self,
        image: np.ndarray | pb.Image | None,
        enabled: bool = True,
        deadline: float | None = None,
        follow: Box | None = None,
        search: StreamFaceSearch | None = None,
        *,
        max_pixels: int | None = None,
    ) -> Outcome:
        """`follow`: the main face of the stream's last frame; the answer stays with it while it is in view.
        `search`: the stream's face search; without it (Fuse) the whole image is searched. For `max_pixels`, see
        find_faces."""
        if not enabled:
            return _counted("video", Outcome(pb.DISABLED, "left out by options.modalities"))
        if image is None:
            return _counted("video", Outcome(pb.ABSENT, "the request carried no image"))
        return await self.classify(await self.find_faces(image, search, max_pixels=max_pixels), deadline, follow)

    async def find_faces(
        self, image: np.ndarray | pb.Image, search: StreamFaceSearch | None = None, *,
        max_pixels: int | None = None, field: str = "image",
    ) -> Faces:
        """The faces of an image, by the stream's `search` or (None) by a search of the whole image.

        An encoded image (a pb.Image of at most `max_pixels`) is decoded in the same worker job as the search: a
        JPEG's few ms stay off the event loop, and a frame waits for a worker thread once, not twice (raises
        InvalidInput for an image that does not decode)."""
        detect = self._faces.faces if search is None else search.faces
        searched_whole = None if search is None else search.full_searches

        def work() -> tuple[list[Box], np.ndarray]:
            pixels = image
            if isinstance(image, pb.Image):
                with timed(Stage.DECODE):
                    pixels = decode_image(image, max_pixels=max_pixels, field=field)
            with timed(Stage.FACE):
                return detect(pixels)

        boxes, crops = await asyncio.get_running_loop().run_in_executor(self._executor, work)
        return Faces(boxes, crops, whole_frame=search is None or search.full_searches > searched_whole)

    async def classify(self, faces: Faces, deadline: float | None = None, follow: Box | None = None) -> Outcome:
        """The video model's answer for faces found (see video() for `follow`)."""
        return _counted("video", await self._classify(faces, deadline, follow))

    async def _classify(self, faces: Faces, deadline: float | None, follow: Box | None) -> Outcome:
        boxes = faces.boxes
        if not boxes:
            return Outcome(pb.NO_FACE, "no face found in the image")
        try:
            with timed(Stage.PREDICT_VIDEO):
                prediction = await self.video_client.predict(faces.crops, deadline)
        except ModelError as error:
            return Outcome(pb.MODEL_UNAVAILABLE, str(error))
        scored = [
            pb.Face(
                box=pb.BoundingBox(x=b.x, y=b.y, width=b.width, height=b.height),
                scores=emotion_scores(p),
                top_emotion=LABELS[int(np.argmax(p))],
            )
            for b, p in zip(boxes, prediction.probabilities)
        ]
        primary = main_face(boxes, follow)
        return Outcome(
            pb.USED,
            probabilities=prediction.probabilities[primary],
            version=prediction.version,
            faces=scored,
            primary_face=primary,
            primary_box=boxes[primary],
        )

    async def fuse(
        self,
        samples: np.ndarray | None,
        sample_rate: int,
        image: pb.Image | None,
        options: Options,
        *,
        max_pixels: int,
        deadline: float | None = None,
    ) -> pb.FuseResponse:
        """`image` is decoded in the video branch, so the voice's work starts at once (raises InvalidInput for an
        image that does not decode; see find_faces). `deadline` (time.monotonic()) is the caller's; model-server
        calls do not run past it."""
        audio, video = await asyncio.gather(
            self.audio(samples, sample_rate, options.use_audio, deadline),
            self.video(image, options.use_video, deadline, max_pixels=max_pixels),
        )
        return self.response(audio, video, options)

    def response(self, audio: Outcome, video: Outcome, options: Options) -> pb.FuseResponse:
        with timed(Stage.FUSION):
            method = self._applicable_method(options.method, audio, video)
            fused = METHODS[method](
                {"audio": audio.probabilities, "video": video.probabilities},
                {"audio": options.audio_weight, "video": options.video_weight},
            )
            response = pb.FuseResponse(
                audio=self._modality(audio, self.audio_client.contract.name),
                video=self._modality(video, self.video_client.contract.name),
                faces=video.faces,
                primary_face=video.primary_face,
                audio_weight=fused.weights["audio"],
                video_weight=fused.weights["video"],
                uncertain_below=self.uncertainty.uncertain_below,
            )
            if fused.probabilities is not None:
                response.fusion_method = method_value(method)
                disagree = modalities_disagree(audio.probabilities, video.probabilities, self.uncertainty.confident_above)
                set_answer(response, fused.probabilities, disagree)
        return response

    def _applicable_method(self, requested: str, audio: Outcome, video: Outcome) -> str:
        """The method the answer gets: the learned fusion only for the model versions it was fitted for."""
        if audio.probabilities is None or video.probabilities is None:
            return requested  # one modality: every method gives its answer as it is
        versions = {"audio": audio.version, "video": video.version}
        method = applicable_method(requested, versions)
        if method != requested and versions != self._unfitted_versions_logged:
            self._unfitted_versions_logged = versions
            log.warning(
                "%s fusion was fitted for other model versions than those answering (%s): fusing with %s until it "
                "is refitted (python -m training.fusion_eval)", requested, versions, method,
            )
        return method

    @staticmethod
    def _modality(outcome: Outcome, model_name: str) -> pb.ModalityResult:
        result = pb.ModalityResult(status=outcome.status, reason=outcome.reason, model_name=model_name, model_version=outcome.version)
        if outcome.probabilities is not None:
            result.scores.extend(emotion_scores(outcome.probabilities))
            result.confidence = confidence(outcome.probabilities)
        return result
