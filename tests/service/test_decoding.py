import cv2
import numpy as np
import pytest

from fusion_service.decoding import InvalidInput, decode_audio, decode_image, decode_pcm, encoded_image_size
from protos.emotion.v1 import emotion_pb2 as pb
from testkit.media import jpeg_header, png_header


def test_int16_pcm_is_scaled_to_unit_range():
    data = np.array([0, 16384, -32768], dtype="<i2").tobytes()
    samples = decode_pcm(data, pb.PCM_S16LE, 16000, max_seconds=1)
    np.testing.assert_allclose(samples, [0.0, 0.5, -1.0])
    assert samples.dtype == np.float32


def test_float_pcm_round_trips():
    values = np.array([0.25, -0.5], dtype="<f4")
    np.testing.assert_array_equal(decode_pcm(values.tobytes(), pb.PCM_F32LE, 48000, max_seconds=1), values)


@pytest.mark.parametrize(
    "data, encoding, rate, message",
    [
        (b"\x00\x00\x00", pb.PCM_S16LE, 16000, "whole number"),
        (np.array([np.nan], dtype="<f4").tobytes(), pb.PCM_F32LE, 16000, "finite"),
        (np.array([np.inf], dtype="<f4").tobytes(), pb.PCM_F32LE, 16000, "finite"),
        (b"\x00\x00", pb.PCM_S16LE, 0, "sample_rate_hz"),
        (b"\x00\x00", pb.PCM_S16LE, 1_000_000, "sample_rate_hz"),
        (b"\x00\x00", pb.AUDIO_ENCODING_UNSPECIFIED, 16000, "encoding"),
        (np.zeros(16001 * 2, dtype="<i2").tobytes(), pb.PCM_S16LE, 16000, "longer than"),
    ],
)
def test_malformed_audio_is_refused_with_what_was_wrong(data, encoding, rate, message):
    with pytest.raises(InvalidInput, match=message):
        decode_pcm(data, encoding, rate, max_seconds=2)


def test_empty_audio_field_is_refused():
    with pytest.raises(InvalidInput, match="empty"):
        decode_audio(pb.Audio(encoding=pb.PCM_S16LE, sample_rate_hz=16000), max_seconds=2)


def _png(image: np.ndarray) -> bytes:
    return cv2.imencode(".png", image)[1].tobytes()


def _jpeg(image: np.ndarray, progressive: bool = False) -> bytes:
    return cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_PROGRESSIVE, int(progressive)])[1].tobytes()


@pytest.mark.parametrize("encode", [_png, _jpeg, lambda image: _jpeg(image, progressive=True)])
def test_image_size_is_read_from_the_header(encode):
    assert encoded_image_size(encode(np.zeros((40, 70), dtype=np.uint8))) == (70, 40)


@pytest.mark.parametrize("header", [png_header(20_000, 20_000), jpeg_header(20_000, 20_000)])
def test_huge_image_is_refused_from_its_header_without_decoding(header, monkeypatch):
    def must_not_decode(*args):
        raise AssertionError("decoded an image whose header already said it is too large")

    monkeypatch.setattr(cv2, "imdecode", must_not_decode)
    with pytest.raises(InvalidInput, match="20000x20000 has more than the 1000000 pixels accepted"):
        decode_image(pb.Image(encoded=header), max_pixels=1_000_000)


@pytest.mark.parametrize("header", [png_header(1, 1), jpeg_header(1, 1), jpeg_header(64, 0)])
def test_tiny_image_is_refused_from_its_header(header):
    with pytest.raises(InvalidInput, match="too small; each side must be at least 16"):
        decode_image(pb.Image(encoded=header), max_pixels=1_000_000)


def test_encoded_colour_image_decodes_to_bgr_for_the_face_detector():
    image = np.zeros((40, 60, 3), dtype=np.uint8)
    image[:, :, 2] = 255
    np.testing.assert_array_equal(decode_image(pb.Image(encoded=_png(image)), max_pixels=10_000), image)


def test_raw_frames_keep_their_layout():
    bgr = np.random.default_rng(0).integers(0, 255, (20, 30, 3), dtype=np.uint8)
    raw = pb.RawFrame(width=30, height=20, format=pb.BGR8, data=bgr.tobytes())
    np.testing.assert_array_equal(decode_image(pb.Image(raw=raw), max_pixels=10_000), bgr)
    gray = bgr[:, :, 0].copy()
    raw = pb.RawFrame(width=30, height=20, format=pb.GRAY8, data=gray.tobytes())
    np.testing.assert_array_equal(decode_image(pb.Image(raw=raw), max_pixels=10_000), gray)


@pytest.mark.parametrize(
    "image, message",
    [
        (pb.Image(), "either encoded"),
        (pb.Image(encoded=b""), "empty"),
        (pb.Image(encoded=b"not an image at all"), "neither JPEG nor PNG"),
        (pb.Image(encoded=_png(np.zeros((40, 40), dtype=np.uint8))[:20]), "IHDR"),
        (pb.Image(encoded=_png(np.zeros((40, 40), dtype=np.uint8))[:60]), "could not decode"),
        (pb.Image(encoded=_jpeg(np.zeros((40, 40), dtype=np.uint8))[:40]), "frame header"),
        (pb.Image(encoded=cv2.imencode(".bmp", np.zeros((40, 40), dtype=np.uint8))[1].tobytes()), "neither JPEG nor PNG"),
        (pb.Image(raw=pb.RawFrame(width=30, height=20, format=7, data=b"\x00" * 600)), "got 7"),
        (pb.Image(raw=pb.RawFrame(width=30, height=0, format=pb.GRAY8)), "too small"),
        (pb.Image(raw=pb.RawFrame(width=30, height=20, format=pb.BGR8, data=b"\x00" * 10)), "needs 1800 bytes"),
        (pb.Image(raw=pb.RawFrame(width=30, height=20, data=b"\x00" * 600)), "format"),
        (pb.Image(raw=pb.RawFrame(width=4000, height=4000, format=pb.GRAY8)), "pixels accepted"),
        (pb.Image(encoded=_png(np.zeros((1, 1), dtype=np.uint8))), "too small"),
    ],
)
def test_malformed_images_are_refused_with_what_was_wrong(image, message):
    with pytest.raises(InvalidInput, match=message):
        decode_image(image, max_pixels=1_000_000)
