"""explorer.uploads: uploaded images to the dataset's format."""
import io

import pytest
import torch
from PIL import Image

from explorer.uploads import UploadError, image_from_bytes


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
