"""occrecon: detailed 3D face reconstruction from a single photo under occlusion.

Layout (see ``CONVENTIONS.md`` for coordinate frames, units and tensor layouts):

- ``occrecon.nets``       plain ``nn.Module`` networks (no Lightning imports)
- ``occrecon.systems``    LightningModules: training logic of each stage
- ``occrecon.losses``     loss functions (functional first, thin Module wrappers)
- ``occrecon.metrics``    metrics (torchmetrics based)
- ``occrecon.facemodel``  morphable face models (procedural, SFM, BFM) and coefficient layouts
- ``occrecon.geometry``   camera, lighting and other small geometric functions
- ``occrecon.render``     differentiable rasterizer (torch and nvdiffrast backends)
- ``occrecon.synth``      the embedded synthetic occluded-face data set generator
- ``occrecon.config``     typed OmegaConf configuration
- ``occrecon.commands``   sub-commands of the ``occrecon`` CLI
"""

__version__ = "0.1.0"
