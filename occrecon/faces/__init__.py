"""Face front end for ordinary photos: detection, 68-point landmarks, alignment, per-image fitting.

Public API (one image, no trained network needed)::

    from occrecon.faces.detect import FaceDetector             # face-api ports (tiny detector + 68 landmarks)
    from occrecon.faces.align import align_face                # 5-point similarity to a stage's framing
    from occrecon.faces.fit import FaceFitter, FitSettings     # Eq. 4 analysis-by-synthesis fit
    from occrecon.faces.reconstruct import NetworkPriors, reconstruct_photo, export_face

    faces = FaceDetector().detect(photo)                       # [Face(box, score, landmarks [68, 2])]
    aligned = align_face(photo, faces[0].landmarks, "deep3d", 224)   # .image, .landmarks, .to_photo, .paste
    result = FaceFitter(model).fit(aligned.image, landmarks[None], y0=None)   # .coeffs, .render, .mask, .metrics
    recs = reconstruct_photo(photo, detector, fitter, NetworkPriors(coeffs=..., labels=...))

Modules: :mod:`~occrecon.faces.nets` (the ported networks), :mod:`~occrecon.faces.detect`,
:mod:`~occrecon.faces.align`, :mod:`~occrecon.faces.fit`, :mod:`~occrecon.faces.reconstruct`
(export: meshes, coefficients, picture), :mod:`~occrecon.faces.landmark_cache` (landmarks for
unannotated data sets), :mod:`~occrecon.faces.photos` (finding/reading photos),
:mod:`~occrecon.faces.samples` (public-domain photos shipped by installed packages).
"""
