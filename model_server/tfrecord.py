"""Reads TFRecord files (TF Serving's warm-up file) without TensorFlow, checking both checksums as TensorFlow's
RecordReader does.

A record is: length (uint64, little-endian), masked CRC-32C of those 8 bytes (uint32), the data, masked CRC-32C
of the data (uint32). CRC-32C comes from google-crc32c (Google's C library, hardware-accelerated).
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from pathlib import Path

import google_crc32c

_HEADER = struct.Struct("<QI")
_FOOTER = struct.Struct("<I")
_MASK_DELTA = 0xA282EAD8


class DataLossError(ValueError):
    """The file is not a well-formed TFRecord file; the message is TensorFlow's."""


def masked_crc32c(data: bytes) -> int:
    """TensorFlow's masked CRC-32C (crc32c::Mask): rotated right by 15 bits, plus a constant."""
    crc = google_crc32c.value(data)
    return ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + _MASK_DELTA) & 0xFFFFFFFF


def read_records(path: Path) -> Iterator[bytes]:
    """The records of an uncompressed TFRecord file, in order; DataLossError at the first malformed one."""
    with open(path, "rb") as file:
        offset = 0
        while header := file.read(_HEADER.size):
            if len(header) < _HEADER.size:
                raise DataLossError(f"truncated record at {offset}")
            length, length_crc = _HEADER.unpack(header)
            if masked_crc32c(header[:8]) != length_crc:
                raise DataLossError(f"corrupted record at {offset}")
            data = file.read(length)
            footer = file.read(_FOOTER.size)
            if len(data) < length or len(footer) < _FOOTER.size:
                raise DataLossError(f"truncated record at {offset}")
            if masked_crc32c(data) != _FOOTER.unpack(footer)[0]:
                raise DataLossError(f"corrupted record at {offset}")
            yield data
            offset += _HEADER.size + length + _FOOTER.size
