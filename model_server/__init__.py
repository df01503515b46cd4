"""Development model server: TensorFlow Serving's gRPC API over model_repository/, for machines without TF Serving.

Modelled on TF Serving's own split: source (finds versions on disk), loader (one loaded version),
manager (which versions serve), batching (--enable_batching), servicer (the gRPC services), server
(start-up and shut-down). A version runs on LiteRT when its conversion (litert_conversion) matches its SavedModel
(litert_runtime), else in a TensorFlow Session (tf_runtime, the only module importing TensorFlow); messages are the
vendored protos in the server's own descriptor pool (wire), so a server whose versions all run on LiteRT never
imports TensorFlow.
"""
