"""Fusion service: voice + face emotion recognition over gRPC."""
