"""explorer.uploads: uploaded images to the dataset's format."""
import io
import zlib

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image, PngImagePlugin

from explorer.uploads import MAX_DECODED, UploadError, image_from_bytes


def _png(img: Image.Image, fmt="PNG") -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt)
    return buf.getvalue()


def test_upload_conversion_to_mnist_format():
    img = Image.new("RGB", (120, 80), "white")
    img.paste((0, 0, 0), (50, 10, 70, 70))  # a dark bar on white paper
    x, steps = image_from_bytes(_png(img), (1, 28, 28), content_size=20, dark_background=True)
    assert x.shape == (1, 1, 28, 28) and x.dtype == torch.float32
    assert x[0, 0, 0, 0] == 0 and x.max() > 0.9  # inverted: light-on-dark
    assert any("inverted" in s for s in steps) and any("20 x 20" in s for s in steps)
    rows = (x[0, 0] > 0.5).any(1).nonzero()
    assert rows.max() - rows.min() + 1 == 20  # the long side fills MNIST's 20-pixel box


@pytest.mark.parametrize("data, match", [(b"", "empty"), (b"not an image", "not an image file"),
                                         (_png(Image.new("L", (5000, 2))), "limit is 4096 pixels"),
                                         (_png(Image.new("LAB", (8, 8)), "TIFF"), "mode 'LAB'")])
def test_bad_uploads_get_clear_errors(data, match):
    with pytest.raises(UploadError, match=match) as err:
        image_from_bytes(data, (1, 28, 28), name="scan.png")
    assert str(err.value).startswith("scan.png: ") and "BytesIO" not in str(err.value)


def _header_bomb(side: int = 60000) -> bytes:
    """A 1 x 1 PNG whose header claims ``side`` x ``side`` pixels (CRC fixed, so Pillow reads the header)."""
    data = bytearray(_png(Image.new("L", (1, 1))))
    at = data.index(b"IHDR")
    data[at + 4: at + 12] = side.to_bytes(4, "big") * 2
    data[at + 17: at + 21] = zlib.crc32(bytes(data[at: at + 17])).to_bytes(4, "big")
    return bytes(data)


def _text_bomb() -> bytes:
    info = PngImagePlugin.PngInfo()
    info.add_text("comment", "A" * (16 << 20), zip=True)  # 16 MB of zTXt in ~16 KB
    buf = io.BytesIO()
    Image.new("L", (8, 8)).save(buf, "PNG", pnginfo=info)
    return buf.getvalue()


def _truncated_jpeg() -> bytes:
    img = Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8))
    return _png(img, "JPEG")[:600]


def _exif_rotated() -> bytes:
    """A tall dark bar on white, stored lying on its side with EXIF orientation 6 (rotate 90° clockwise)."""
    img = Image.new("L", (120, 60), 255)
    img.paste(0, (10, 25, 110, 35))  # a horizontal bar as stored: upright it is a vertical bar
    exif = Image.Exif()
    exif[0x0112] = 6
    buf = io.BytesIO()
    img.save(buf, "JPEG", exif=exif.tobytes())
    return buf.getvalue()


@pytest.mark.parametrize("data, match", [
    (_header_bomb(), "claims more pixels"),
    (_text_bomb(), "cannot be decoded as an image .*Decompressed"),
    (_truncated_jpeg(), "cannot be decoded as an image"),
    (_png(Image.new("RGBA", (4000, 4000))), "decode to 61 MB; the limit is 40 MB"),
    (_png(Image.new("L", (64, 64), 255)), "same brightness"),  # all white
    (_png(Image.new("L", (64, 64), 0)), "same brightness"),  # all black
    (_png(Image.new("RGB", (1, 1), (10, 200, 30))), "same brightness"),
    (_png(Image.fromarray(np.full((8, 8), np.nan, np.float32), mode="F"), "TIFF"), "NaN or infinite"),
], ids=["pixel-bomb", "text-bomb", "truncated-jpeg", "decoded-size", "all-white", "all-black", "1x1", "nan"])
def test_every_bad_image_is_named_and_refused(data, match):
    """Each class of bad image from issue 16 ends in an UploadError that names the file, never in
    Pillow's own exception (DecompressionBombError, ValueError, OSError) or a blank result."""
    with pytest.raises(UploadError, match=match) as err:
        image_from_bytes(data, (1, 28, 28), 20, name="scan.png")
    assert str(err.value).startswith("scan.png: ") and "BytesIO" not in str(err.value)


def test_exif_orientation_is_applied():
    x, steps = image_from_bytes(_exif_rotated(), (1, 28, 28), 20)
    on = (x[0, 0] > 0.5).nonzero()
    height, width = int(on[:, 0].max() - on[:, 0].min() + 1), int(on[:, 1].max() - on[:, 1].min() + 1)
    assert height > 3 * width, (height, width)  # upright: the bar stands
    assert any("EXIF orientation" in s for s in steps)


def test_a_large_image_is_reduced_before_conversion():
    img = Image.new("L", (4096, 2048), 0)
    img.paste(255, (1000, 500, 3000, 1500))
    x, steps = image_from_bytes(_png(img), (1, 28, 28), 20)
    assert any(s.startswith("reduced to 512 x 256") for s in steps), steps
    assert x.shape == (1, 1, 28, 28) and x.max() > 0.9
    assert 4096 * 4096 * 1 <= MAX_DECODED  # the largest grayscale upload is decodable


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=2048), st.sampled_from(["PNG", "JPEG", "GIF", "BMP", "TIFF"]), st.integers(0, 400))
def test_corrupted_image_files_fail_cleanly(noise, fmt, cut):
    """Any image file with bytes overwritten or cut off either converts to a finite image in [0, 1]
    or raises UploadError naming the file; nothing else escapes."""
    img = Image.fromarray(np.random.default_rng(cut).integers(0, 256, (24, 24), dtype=np.uint8))
    data = bytearray(_png(img.convert("RGB") if fmt == "JPEG" else img, fmt))
    at = cut % max(1, len(data))
    data[at: at + len(noise)] = noise
    data = bytes(data[: len(data) - cut])
    try:
        x, _ = image_from_bytes(data, (1, 28, 28), 20, name="fuzz.png")
    except UploadError as e:
        assert str(e).startswith("fuzz.png: ")
        return
    assert torch.isfinite(x).all() and 0 <= float(x.min()) and float(x.max()) <= 1
