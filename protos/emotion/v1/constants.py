"""Fixed values of the emotion.v1 API that emotion.proto can only name in comments (proto3 has no constants).

They live beside the generated stubs so that a client needs nothing from the service's code, and the
service and training take them from here too, so the two sides cannot disagree. Importing this module
needs neither the stubs nor gRPC.
"""

from __future__ import annotations

# Every EmotionScore.label, in the order the service lists scores (FER2013's seven classes).
LABELS: tuple[str, ...] = ("angry", "disgust", "fear", "happy", "neutral", "sad", "surprise")

# The rate the models hear: audio sent at it is not resampled, and a StreamConfig that leaves
# audio_sample_rate_hz at 0 means it.
AUDIO_SAMPLE_RATE_HZ = 16_000

# Sample rates the service accepts (Audio.sample_rate_hz, StreamConfig.audio_sample_rate_hz).
MIN_AUDIO_SAMPLE_RATE_HZ = 8_000
MAX_AUDIO_SAMPLE_RATE_HZ = 192_000

# Seconds of audio one result classifies: the end of a Fuse call's audio, or a stream's sliding window.
AUDIO_WINDOW_SECONDS = 2.0

# Longest audio one AudioChunk of a stream may carry.
MAX_AUDIO_CHUNK_SECONDS = 2.0

# Highest StreamConfig.result_rate_hz the service accepts.
MAX_RESULT_RATE_HZ = 30.0
