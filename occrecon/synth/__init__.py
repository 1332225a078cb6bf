"""The embedded synthetic occluded-face data set (issue 4; documented in ``docs/synthetic.md``).

* :mod:`occrecon.synth.config` — :class:`~occrecon.synth.config.SynthConfig` (what to generate);
* :mod:`occrecon.synth.scene` — sampling and rendering one sample (``SceneContext.render_sample``);
* :mod:`occrecon.synth.occluders`, :mod:`.details`, :mod:`.backgrounds` — glasses geometry,
  hand/hair layers, wrinkle displacement and bump encoding, textured backgrounds;
* :mod:`occrecon.synth.dataset_writer` — ``generate_dataset`` (shards, manifest, resume, workers);
* :mod:`occrecon.synth.reader` — ``SyntheticDataset``, ``load_manifest``, ``identity_splits``;
* :mod:`occrecon.synth.export` — CelebAMask-HQ / 300W / LFW layouts;
* :mod:`occrecon.synth.fields` — the field table; :mod:`.preview` — picture grids.
"""
