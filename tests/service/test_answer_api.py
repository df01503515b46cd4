"""The response says how it fused and how sure it is; clients built before these fields keep working."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

from fusion_service.analysis import Options, resolve_options
from fusion_service.decoding import InvalidInput
from fusion_service.fusion import learned_parameters, product_of_experts
from fusion_service.fusion_methods import METHODS, applicable_method
from fusion_service.server import SERVING
from protos.emotion.v1 import emotion_pb2 as pb
from tests.service.harness import good_request, running_service

DEFAULTS = Options(audio_weight=0.3, video_weight=0.7, method="weighted_sum")

# What this change added to emotion.proto: a client compiled before it knows none of these.
ADDED_FIELDS = {
    "FusionOptions": {"method"},
    "ModalityResult": {"confidence"},
    "FuseResponse": {"fusion_method", "uncertain", "uncertainty_reason", "uncertain_below"},
    "StreamConfig": {"smoothing_time_constant_s"},
    "StreamResponse": {"instant_fused", "instant_top_emotion", "instant_top_probability", "smoothing_time_constant_s"},
}
ADDED_ENUMS = {"FusionMethod", "UncertaintyReason"}


def old_client_messages() -> dict[str, type]:
    """Message classes of emotion.proto as it was before these fields, in a pool of their own."""
    file = descriptor_pb2.FileDescriptorProto()
    pb.DESCRIPTOR.CopyToProto(file)
    for message in file.message_type:
        added = ADDED_FIELDS.get(message.name, set())
        keep = [f for f in message.field if f.name not in added]
        # A proto3 `optional` field has a oneof of its own, named after it: it goes too, and the others renumber.
        oneofs = [o.name for o in message.oneof_decl if o.name.lstrip("_") not in added]
        for field in keep:
            if field.HasField("oneof_index"):
                field.oneof_index = oneofs.index(message.oneof_decl[field.oneof_index].name)
        del message.field[:]
        message.field.extend(keep)
        kept_oneofs = [o for o in message.oneof_decl if o.name in oneofs]
        del message.oneof_decl[:]
        message.oneof_decl.extend(kept_oneofs)
    keep_enums = [e for e in file.enum_type if e.name not in ADDED_ENUMS]
    del file.enum_type[:]
    file.enum_type.extend(keep_enums)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file)
    return {m.name: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"emotion.v1.{m.name}")) for m in file.message_type}


def test_the_old_schema_really_lacks_the_new_fields():
    old = old_client_messages()
    assert "fusion_method" not in old["FuseResponse"].DESCRIPTOR.fields_by_name
    assert "top_emotion" in old["FuseResponse"].DESCRIPTOR.fields_by_name


def test_every_method_of_the_api_is_offered_under_its_name():
    named = {pb.FusionMethod.Name(v).lower() for v in pb.FusionMethod.values()} - {"fusion_method_unspecified"}
    assert set(METHODS) == named


def test_without_method_or_weights_a_request_gets_the_service_default():
    defaults = Options(audio_weight=0.3, video_weight=0.7, method="product_of_experts")
    assert resolve_options(pb.FusionOptions(), defaults).method == "product_of_experts"


def test_weights_alone_are_an_explicit_override_with_the_fixed_weighted_sum():
    defaults = Options(audio_weight=0.3, video_weight=0.7, method="learned_logistic")
    options = resolve_options(pb.FusionOptions(audio_weight=0.5), defaults)
    assert (options.method, options.audio_weight, options.video_weight) == ("weighted_sum", 0.5, 0.7)


def test_a_named_method_is_used_with_the_weights_given():
    options = resolve_options(pb.FusionOptions(method=pb.PRODUCT_OF_EXPERTS, video_weight=0.9), DEFAULTS)
    assert (options.method, options.video_weight) == ("product_of_experts", pytest.approx(0.9))


def test_a_method_the_service_does_not_know_is_refused_naming_those_it_offers():
    with pytest.raises(InvalidInput, match=r"options.method: fusion method 99 is not offered by this service; it offers "
                                           r"WEIGHTED_SUM, PRODUCT_OF_EXPERTS, CONFIDENCE_WEIGHTED, LEARNED_LOGISTIC"):
        resolve_options(pb.FusionOptions(method=99), DEFAULTS)


def fuse(request: pb.FuseRequest, voice: np.ndarray | None = None, video_version: int | None = None,
         **settings) -> pb.FuseResponse:
    """One Fuse call; the fake voice model answers `voice` instead of its sure sad when given, the fake face model
    says it is `video_version` when given."""

    async def run():
        async with running_service(**settings) as running:
            if voice is not None:
                running.audio.probabilities = voice.astype(np.float32)
            if video_version is not None:
                running.video.version = video_version
            await running.wait_health(SERVING)
            return await running.stub.Fuse(request, timeout=60)

    return asyncio.run(run())


def test_the_response_says_how_it_fused_how_sure_each_modality_is_and_that_confident_opposites_are_uncertain():
    # The fake models: the voice is sure of sad, the face sure of happy.
    request = good_request()
    request.options.method = pb.WEIGHTED_SUM
    reply = fuse(request)
    assert reply.fusion_method == pb.WEIGHTED_SUM
    assert (reply.audio_weight, reply.video_weight) == pytest.approx((0.3, 0.7))
    assert reply.audio.confidence == pytest.approx(1.0) and reply.video.confidence == pytest.approx(1.0)
    assert reply.uncertain and reply.uncertainty_reason == pb.MODALITIES_DISAGREE
    assert reply.top_emotion == "happy" and reply.top_probability == pytest.approx(0.7), "kept for older clients"
    assert reply.uncertain_below == pytest.approx(0.4)


def test_a_request_without_method_or_weights_gets_the_learned_fusion_the_validation_pairs_chose():
    reply = fuse(good_request())
    assert reply.fusion_method == pb.LEARNED_LOGISTIC
    assert reply.audio_weight + reply.video_weight == pytest.approx(1.0)


def test_the_learned_fusion_gives_way_to_the_product_of_experts_for_model_versions_it_was_not_fitted_for():
    """Its coefficients weigh the answers of the models it was fitted for; a newer face model may be surer or
    less sure, and would be weighed wrongly until the fusion is refitted."""
    unfitted = learned_parameters().fitted_for["video_model_version"] + 1
    reply = fuse(good_request(), video_version=unfitted)
    assert reply.fusion_method == pb.PRODUCT_OF_EXPERTS
    assert reply.video.model_version == unfitted
    assert applicable_method("learned_logistic", {"audio": 3, "video": unfitted}) == "product_of_experts"
    assert applicable_method("weighted_sum", {"audio": 3, "video": unfitted}) == "weighted_sum"


def test_a_request_naming_a_method_is_fused_by_it_and_told_so():
    request = good_request()
    request.options.method = pb.PRODUCT_OF_EXPERTS
    reply = fuse(request, voice=np.full(7, 1 / 7))
    expected = product_of_experts({"audio": np.full(7, 1 / 7), "video": np.eye(7)[3]}, {"audio": 0.3, "video": 0.7})
    assert reply.fusion_method == pb.PRODUCT_OF_EXPERTS
    np.testing.assert_allclose([s.probability for s in reply.fused], expected.probabilities, atol=1e-6)


def test_one_sure_modality_alone_is_certain():
    request = good_request()
    request.options.modalities.append(pb.VIDEO)
    reply = fuse(request)
    assert not reply.uncertain and reply.uncertainty_reason == pb.UNCERTAINTY_REASON_UNSPECIFIED
    assert reply.audio.confidence == 0.0 and reply.audio.status == pb.DISABLED


def test_a_fused_answer_below_the_threshold_is_uncertain_for_low_confidence():
    unsure_voice = np.full(7, 1 / 7)
    request = good_request()
    request.options.method = pb.WEIGHTED_SUM
    reply = fuse(request, voice=unsure_voice, uncertain_below=0.75)  # happy 0.3 / 7 + 0.7 = 0.743
    assert reply.top_emotion == "happy" and reply.top_probability == pytest.approx(0.743, abs=1e-3)
    assert reply.uncertain and reply.uncertainty_reason == pb.LOW_CONFIDENCE
    assert reply.uncertain_below == pytest.approx(0.75)


def test_a_client_built_before_the_new_fields_calls_fuse_and_reads_its_answer():
    old = old_client_messages()
    request = old["FuseRequest"].FromString(good_request().SerializeToString())
    request.options.video_weight = 0.6  # an old client's explicit weights

    async def run():
        async with running_service() as running:
            await running.wait_health(SERVING)
            call = running.channel.unary_unary(
                "/emotion.v1.EmotionFusion/Fuse",
                request_serializer=lambda m: m.SerializeToString(),
                response_deserializer=old["FuseResponse"].FromString,
            )
            return await call(request, timeout=60)

    reply = asyncio.run(run())
    assert reply.top_emotion == "happy"
    assert (reply.audio_weight, reply.video_weight) == pytest.approx((0.3 / 0.9, 0.6 / 0.9))
    probabilities = {s.label: s.probability for s in reply.fused}
    assert probabilities["happy"] == pytest.approx(0.6 / 0.9) and probabilities["sad"] == pytest.approx(0.3 / 0.9)
    # What it does not know it keeps as unknown fields, and passes on unchanged.
    assert pb.FuseResponse.FromString(reply.SerializeToString()).fusion_method == pb.WEIGHTED_SUM


def test_a_new_client_reading_an_old_service_sees_no_method_and_no_uncertainty():
    old = old_client_messages()
    old_reply = old["FuseResponse"](top_emotion="happy", top_probability=0.7, audio_weight=0.3, video_weight=0.7)
    reply = pb.FuseResponse.FromString(old_reply.SerializeToString())
    assert reply.fusion_method == pb.FUSION_METHOD_UNSPECIFIED and not reply.uncertain
    assert reply.top_emotion == "happy"
