"""Faces: from a frame to the video model's input, shared by the live service, training and evaluation.

- `names`: the detectors' names (no OpenCV, so configuration can list them cheaply).
- `boxes`: what every detector returns (Box) and how its boxes are framed (Framing), the FaceDetector protocol,
  and intersection over union.
- `gray`: the gray image every detector and crop takes.
- `haar`, `blazeface`: one module per detector, each with the Framing measured for it.
- `crop`: the crop geometry (`face_crop`): every face the video model sees, webcam or training corpus, goes
  through it.
- `pipeline`: the registry of detectors by name (`make_detector`) and `FacePipeline`, image in, crops out.

To add a detector: a module here with a class that follows `boxes.FaceDetector` and carries its Framing
(measured with training/calibrate_face_margin.py), its name in `names.DETECTOR_NAMES`, and its class in
`pipeline`'s registry.
"""
