"""Shape checks, atomic writes, image reading and seeding."""

import io

import numpy as np
import pytest
import torch
from PIL import Image

from occrecon.errors import DataFormatError, ShapeError
from occrecon.utils.checks import check_shape
from occrecon.utils.io import atomic_write, encode_png, read_image, read_label_map, write_png
from occrecon.utils.seeding import derive_seed, torch_generator


def test_check_shape_accepts_and_rejects():
    check_shape(torch.zeros(2, 3, 4), ["B", 3, "N"])
    check_shape(torch.zeros(7, 5, 2), ["*", 2])
    check_shape(torch.zeros(2), ["*", 2])
    with pytest.raises(ShapeError, match=r"verts must have shape \[B, V, 3\], got \[2, 5, 2\]"):
        check_shape(torch.zeros(2, 5, 2), ["B", "V", 3], "verts")
    with pytest.raises(ShapeError):
        check_shape(torch.zeros(2, 5), ["B", "V", 3])


def test_atomic_write_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "out.bin"
    with pytest.raises(RuntimeError):
        with atomic_write(target) as handle:
            handle.write(b"partial")
            raise RuntimeError("crash")
    assert list(tmp_path.iterdir()) == []
    with atomic_write(target) as handle:
        handle.write(b"done")
    assert target.read_bytes() == b"done"
    assert target.stat().st_mode & 0o044 == 0o044  # readable by others, like a plain open()


def test_read_image_modes(tmp_path):
    rgba = np.zeros((4, 5, 4), np.uint8)
    rgba[..., 0] = 200
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    assert read_image(tmp_path / "a.png").shape == (4, 5, 3)
    Image.fromarray(np.full((3, 2), 77, np.uint8)).save(tmp_path / "g.png")
    gray = read_image(tmp_path / "g.png")
    assert gray.shape == (3, 2, 3) and (gray == 77).all()
    Image.fromarray(np.full((3, 2), 65535, np.uint16)).save(tmp_path / "w.png")
    assert (read_image(tmp_path / "w.png") == 255).all()


def test_read_image_applies_exif_orientation(tmp_path):
    array = np.zeros((2, 4, 3), np.uint8)  # wide image
    image = Image.fromarray(array)
    exif = image.getexif()
    exif[0x0112] = 6  # rotate 90° clockwise on display
    image.save(tmp_path / "r.jpg", exif=exif.tobytes())
    assert read_image(tmp_path / "r.jpg").shape[:2] == (4, 2)


def test_truncated_jpeg_names_the_file(tmp_path):
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(buf, "JPEG")
    (tmp_path / "t.jpg").write_bytes(buf.getvalue()[:300])
    with pytest.raises(DataFormatError, match="t.jpg"):
        read_image(tmp_path / "t.jpg")


def test_label_map_round_trip_16bit(tmp_path):
    labels = np.arange(12, dtype=np.uint16).reshape(3, 4) * 1000
    write_png(tmp_path / "l.png", labels)
    np.testing.assert_array_equal(read_label_map(tmp_path / "l.png"), labels.astype(np.int64))
    colour = np.zeros((2, 2, 3), np.uint8)
    colour[0, 0] = (1, 2, 3)
    Image.fromarray(colour).save(tmp_path / "c.png")
    with pytest.raises(DataFormatError, match="single-channel"):
        read_label_map(tmp_path / "c.png")


def test_png_encoding_is_deterministic():
    array = np.random.default_rng(1).integers(0, 255, (8, 8, 3), dtype=np.uint8)
    assert encode_png(array) == encode_png(array.copy())


def test_seeds_are_stable_and_distinct():
    assert derive_seed(0, "a", 3) == derive_seed(0, "a", 3)
    assert derive_seed(0, "a", 3) != derive_seed(0, "a", 4)
    a = torch.rand(3, generator=torch_generator(5, 1))
    b = torch.rand(3, generator=torch_generator(5, 1))
    assert torch.equal(a, b)
