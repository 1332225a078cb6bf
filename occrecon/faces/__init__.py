"""Face front end for ordinary photos: detection, 68-point landmarks, alignment, per-image fitting.

- :mod:`occrecon.faces.nets`: PyTorch ports of face-api's tiny face detector and landmark nets.
- :mod:`occrecon.faces.detect`: :class:`FaceDetector` (boxes, scores, landmarks in photo pixels).
- :mod:`occrecon.faces.samples`: public-domain photos shipped by installed packages.
"""
