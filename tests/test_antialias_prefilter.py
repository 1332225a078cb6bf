"""The antialias pre-filter (:func:`occrecon.render.antialias.near_silhouette`) is exact.

Truths: the antialias without the pre-filter (every differing pixel pair walked), which must give
bit-identical images and gradients on scenes with folds, overlaps, off-screen and behind-camera
geometry; and a brute-force marking of the pixel centres near each silhouette edge written with
Python loops from the definition.
"""

import math

import pytest
import torch

import occrecon.render.antialias as aa
from occrecon.facemodel.factory import load_face_model
from occrecon.geometry.camera import PerspectiveCamera
from occrecon.render.torch_raster import rasterize

SIZE = 96


def face_scene(batch: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    model = load_face_model("procedural")
    gen = torch.Generator().manual_seed(3)
    pose = torch.zeros(batch, 6)
    pose[:, :3] = (torch.rand(batch, 3, generator=gen) - 0.5) * torch.tensor([0.6, 2.4, 0.6])  # up to ~70 deg yaw
    cam = PerspectiveCamera(SIZE)
    v = model.mean_shape[None].expand(batch, -1, -1)
    return cam.clip_from_view(cam.view_from_model(v, pose)), model.triangles.long()


def soup_scene(n: int = 300, batch: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    """Overlapping, randomly wound triangles; some reach off-screen, a few behind the camera."""
    gen = torch.Generator().manual_seed(0)
    centre = torch.rand(batch, n, 1, 3, generator=gen) * 2.4 - 1.2
    p = (centre + 0.25 * torch.randn(batch, n, 3, 3, generator=gen)).reshape(batch, 3 * n, 3)
    w = 1.5 + p[..., 2:3]  # about 1 % of the vertices have w <= 0
    pos = torch.cat([p[..., :2] * w, p[..., 2:3] * 0.3 * w, w], -1)
    return pos.double(), torch.arange(3 * n).view(n, 3)


def run(pos: torch.Tensor, tri: torch.Tensor, prefilter: bool, monkeypatch) -> tuple[torch.Tensor, torch.Tensor]:
    monkeypatch.setattr(aa, "PREFILTER", prefilter)
    pos = pos.detach().clone().requires_grad_(True)
    rast = rasterize(pos.detach(), tri, (SIZE, SIZE))
    color = torch.rand(*rast.shape[:3], 3, generator=torch.Generator().manual_seed(1), dtype=pos.dtype)
    out = aa.antialias(color, rast, pos, tri)
    (grad,) = torch.autograd.grad((out * out).sum(), pos)
    return out, grad


@pytest.mark.parametrize("scene", [face_scene, soup_scene])
def test_prefilter_changes_nothing(scene, monkeypatch):
    pos, tri = scene()
    out_all, grad_all = run(pos, tri, False, monkeypatch)
    out_pre, grad_pre = run(pos, tri, True, monkeypatch)
    assert torch.equal(out_all, out_pre)
    assert torch.equal(grad_all, grad_pre)
    assert grad_all.abs().sum() > 0  # silhouettes were blended, so the comparison says something


def brute_force_near(ndc: torch.Tensor, tri: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """The definition, one edge and one pixel at a time."""
    height, width = size
    grow = aa.NEAR_GROW
    nbr = aa.edge_topology(tri)
    out = torch.zeros(ndc.shape[0], height, width, dtype=torch.bool)
    for b in range(ndc.shape[0]):
        corners = ndc[b, tri]
        winding = torch.sign(aa._signed_area(corners)).tolist()
        for t in range(tri.shape[0]):
            for k in range(3):
                n = int(nbr[t, k])
                if n >= 0 and winding[t] == winding[n]:
                    continue  # interior edge
                pa, pc = corners[t, (k + 1) % 3], corners[t, (k + 2) % 3]
                xs = [float((p[0] + 1) * width / 2 - 0.5) for p in (pa, pc)]
                ys = [float((p[1] + 1) * height / 2 - 0.5) for p in (pa, pc)]
                if not all(map(math.isfinite, xs + ys)):
                    continue
                for i in range(height):
                    for j in range(width):
                        if min(xs) - grow <= j <= max(xs) + grow and min(ys) - grow <= i <= max(ys) + grow:
                            out[b, i, j] = True
    return out


def test_near_silhouette_marks_the_pixels_near_each_silhouette_edge():
    # Two quads: one folded along its diagonal (opposite windings), one flat; 24 x 20 pixels.
    verts = torch.tensor([[-0.9, -0.8], [-0.1, -0.7], [-0.2, 0.1], [-0.8, 0.2],
                          [0.2, 0.3], [0.8, 0.35], [0.85, 0.9], [0.25, 0.8]], dtype=torch.float64)  # fmt: skip
    tri = torch.tensor([[0, 1, 2], [0, 3, 2], [4, 5, 6], [4, 6, 7]])
    ndc = verts[None]
    winding = torch.sign(aa._signed_area(ndc[:, tri]))
    got = aa.near_silhouette(ndc, tri, aa.edge_topology(tri), winding, (20, 24))
    want = brute_force_near(ndc, tri, (20, 24))
    assert torch.equal(got, want)
    assert 0 < want.sum() < want.numel() / 2
