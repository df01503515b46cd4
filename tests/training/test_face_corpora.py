"""Face corpus loaders on generated files named by each corpus's conventions, and the one crop path."""

from __future__ import annotations

import csv
from pathlib import Path

import cv2
import numpy as np
import pytest

import fusion_service.features.faces.pipeline as face_pipeline
from fusion_service.features.faces.crop import FACE_SIZE
from fusion_service.features.faces.gray import to_gray
from fusion_service.features.faces.pipeline import FacePipeline
from protos.emotion.v1.constants import LABELS
from testkit.media import face_photo, no_face_photo
from training.face_corpora import (
    CorpusError,
    NoFaceError,
    face_crop_of,
    load_ck48,
    load_face_corpus,
    load_fer2013,
    load_fer2013_csv,
    load_image_folder,
    load_taiwanese,
    read_image,
)
from training.labels import UnknownLabelError

RNG = np.random.default_rng(0)


def write_image(path, image) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), image)


def small_face(size: int = FACE_SIZE) -> np.ndarray:
    return RNG.integers(0, 256, (size, size), dtype=np.uint8)


def test_fer2013_folders_give_labels_splits_and_face_crops(tmp_path):
    write_image(tmp_path / "train" / "happy" / "Training_1.png", small_face())
    write_image(tmp_path / "train" / "disgust" / "Training_2.png", small_face())
    write_image(tmp_path / "test" / "surprise" / "PrivateTest_3.png", small_face())

    items = sorted(load_fer2013(tmp_path), key=lambda item: item.source)

    assert [(item.label, item.split) for item in items] == [
        ("surprise", "private_test"), ("disgust", "train"), ("happy", "train")
    ]
    assert all(item.is_face_crop and item.corpus == "fer2013" for item in items)


def test_fer2013_csv_rows_become_48x48_images_with_usage(tmp_path):
    pixels = [small_face() for _ in range(3)]
    path = tmp_path / "fer2013.csv"
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["emotion", "pixels", "Usage"])
        for emotion, image, usage in zip((0, 3, 6), pixels, ("Training", "PublicTest", "PrivateTest")):
            writer.writerow([emotion, " ".join(map(str, image.ravel())), usage])

    items = load_fer2013_csv(path)

    assert [item.label for item in items] == ["angry", "happy", "surprise"]
    assert [item.split for item in items] == ["train", "public_test", "private_test"]
    for item, image in zip(items, pixels):
        np.testing.assert_array_equal(read_image(item), image)
    assert [item.label for item in load_face_corpus(tmp_path)] == ["angry", "happy", "surprise"]


def test_ck48_reads_subjects_maps_class_names_and_drops_contempt(tmp_path):
    write_image(tmp_path / "anger" / "S010_004_00000017.png", small_face())
    write_image(tmp_path / "sadness" / "S011_002_00000020.png", small_face())
    write_image(tmp_path / "sadness" / "S010_006_00000015.png", small_face())
    write_image(tmp_path / "contempt" / "S012_001_00000010.png", small_face())

    items = sorted(load_ck48(tmp_path), key=lambda item: item.source)

    assert [(item.label, item.subject) for item in items] == [("angry", "S010"), ("sad", "S010"), ("sad", "S011")]
    assert all(item.is_face_crop for item in items)
    assert sorted(item.source for item in load_face_corpus(tmp_path)) == [item.source for item in items]


def test_taiwanese_names_give_performer_and_expression_and_unlabelled_files_are_left_out(tmp_path):
    folder = tmp_path / "faces_256x256"
    for name in ("0101a02.jpg", "0111b01.jpg", "0521d03.jpg", "1532e01.jpg", "2921g05.jpg", "3031f02.jpg",
                 "2821c04.jpg", "1201002.jpg"):  # real names; the last has no expression letter
        write_image(folder / name, face_photo())

    items = sorted(load_taiwanese(tmp_path), key=lambda item: item.source)

    assert [(Path(item.source).name, item.label, item.subject) for item in items] == [
        ("0101a02.jpg", "neutral", "01"), ("0111b01.jpg", "happy", "01"), ("0521d03.jpg", "angry", "05"),
        ("1532e01.jpg", "disgust", "15"), ("2821c04.jpg", "sad", "28"), ("2921g05.jpg", "surprise", "29"),
        ("3031f02.jpg", "fear", "30"),
    ]
    assert all(item.corpus == "taiwanese" and not item.is_face_crop for item in items)  # detected like live frames
    assert [item.source for item in sorted(load_face_corpus(tmp_path), key=lambda i: i.source)] == [
        item.source for item in items
    ]


def test_taiwanese_misnamed_file_is_an_error(tmp_path):
    write_image(tmp_path / "0101x02.jpg", face_photo())
    with pytest.raises(CorpusError, match="0101x02.jpg"):
        load_taiwanese(tmp_path)


def test_generic_folder_reads_synonyms_any_format_and_tells_crops_from_photographs(tmp_path):
    write_image(tmp_path / "Happiness" / "photo.jpg", face_photo())
    write_image(tmp_path / "surprised" / "crop.bmp", cv2.cvtColor(small_face(64), cv2.COLOR_GRAY2BGR))
    write_image(tmp_path / "mad" / "deep.png", (small_face().astype(np.uint16) * 257))  # 16-bit gray
    write_image(tmp_path / "contempt" / "left_out.png", small_face())

    items = {item.label: item for item in load_face_corpus(tmp_path)}

    assert set(items) == {"happy", "surprise", "angry"}
    assert not items["happy"].is_face_crop
    assert items["surprise"].is_face_crop and items["angry"].is_face_crop
    for item in items.values():
        image = read_image(item)
        assert image.dtype == np.uint8 and image.ndim == 3
        assert face_crop_of(item, FacePipeline()).shape == (FACE_SIZE, FACE_SIZE, 1)


def test_generic_folder_with_unknown_class_name_is_an_error(tmp_path):
    write_image(tmp_path / "hapy" / "a.png", small_face())
    with pytest.raises(UnknownLabelError, match="hapy"):
        load_image_folder(tmp_path)


def test_face_crop_items_are_framed_whole_not_redetected(tmp_path):
    image = small_face()
    write_image(tmp_path / "train" / "fear" / "Training_7.png", image)
    (item,) = load_fer2013(tmp_path)

    crop = face_crop_of(item, FacePipeline())

    np.testing.assert_allclose(crop[:, :, 0], image / 255.0, atol=1e-6)


def test_photograph_without_a_face_raises_no_face(tmp_path):
    write_image(tmp_path / "neutral" / "rocket.png", no_face_photo())
    (item,) = load_image_folder(tmp_path)
    with pytest.raises(NoFaceError, match="rocket.png"):
        face_crop_of(item, FacePipeline())


def test_training_crop_of_a_photograph_is_the_serving_crop_same_function_same_parameters(tmp_path, monkeypatch):
    photo = face_photo()
    write_image(tmp_path / "happy" / "astronaut.png", photo)
    (item,) = load_image_folder(tmp_path)
    calls = []
    original = face_pipeline.face_crop

    def recording_face_crop(gray, box, **parameters):
        calls.append((gray.shape, box, parameters))
        return original(gray, box, **parameters)

    monkeypatch.setattr(face_pipeline, "face_crop", recording_face_crop)
    pipeline = FacePipeline()

    boxes, serving_crops = pipeline.faces(photo)
    serving_calls, calls[:] = list(calls), []
    training_crop = face_crop_of(item, pipeline)
    training_calls = list(calls)

    assert len(boxes) >= 1
    assert training_calls[0] == serving_calls[0]  # same image size, same face box, same keyword parameters
    np.testing.assert_array_equal(training_crop, serving_crops[0])
    framing = pipeline.detector.framing
    expected = original(to_gray(photo), boxes[0], margin=framing.margin, shift=framing.shift,
                        roll=framing.roll_for(boxes[0]), size=FACE_SIZE)
    np.testing.assert_array_equal(training_crop, expected)
    assert training_crop.shape == (FACE_SIZE, FACE_SIZE, 1) and training_crop.dtype == np.float32


def test_every_label_name_loads(tmp_path):
    for label in LABELS:
        write_image(tmp_path / label / f"{label}.png", small_face())
    assert sorted(item.label for item in load_image_folder(tmp_path)) == sorted(LABELS)
