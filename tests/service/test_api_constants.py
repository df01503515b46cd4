"""The API's constants (protos/emotion/v1/constants.py) agree with what the proto documents and the models serve."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from protos.emotion.v1.constants import LABELS

ROOT = Path(__file__).resolve().parents[2]
PROTO = ROOT / "protos" / "emotion" / "v1" / "emotion.proto"


def test_the_proto_documents_the_labels_in_their_order():
    documented = re.search(r"string label = 1;\s*//\s*one of: (.+)", PROTO.read_text())
    assert documented, "EmotionScore.label's comment no longer lists the labels"
    assert tuple(documented.group(1).split()) == LABELS


@pytest.mark.parametrize("labels_file", sorted(ROOT.glob("model_repository/*/*/assets/labels.txt")),
                         ids=lambda path: "/".join(path.parts[-4:-2]))
def test_every_exported_model_lists_the_labels_in_the_same_order(labels_file):
    assert tuple(labels_file.read_text().split()) == LABELS
