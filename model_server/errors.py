"""The one error type of the model server: a gRPC status code with TF Serving's message."""

from __future__ import annotations

import grpc

_STATUS_CODE_BY_NUMBER = {code.value[0]: code for code in grpc.StatusCode}


class ServingError(Exception):
    """A request or a load failed; `code` and `message` are what TF Serving would answer."""

    def __init__(self, code: grpc.StatusCode, message: str):
        super().__init__(message)
        self.code = code
        self.message = message

    @classmethod
    def from_canonical_code(cls, number: int, message: str) -> ServingError:
        """Build from a canonical code number (TensorFlow's error codes are gRPC's)."""
        return cls(_STATUS_CODE_BY_NUMBER.get(number, grpc.StatusCode.UNKNOWN), message)

    @property
    def code_number(self) -> int:
        return self.code.value[0]
