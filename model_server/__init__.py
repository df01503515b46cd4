"""Development model server: TensorFlow Serving's gRPC API over model_repository/, for machines without TF Serving.

Modelled on TF Serving's own split: source (finds versions on disk), loader (one loaded version),
manager (which versions serve), batching (--enable_batching), servicer (the gRPC services), server
(start-up and shut-down).
"""
