"""explorer.image_metrics."""
import torch

from explorer.data import load_dataset
from explorer.image_metrics import sharpness


def test_sharpness_ranks_a_blurred_image_below_its_original():
    from torchvision.transforms.functional import gaussian_blur

    x = load_dataset("mnist", "test", limit=32)[0]
    sharp, blurred = sharpness(x), sharpness(gaussian_blur(x, 5, 1.0))
    assert (blurred < sharp).all()
    assert sharpness(torch.zeros(1, 1, 28, 28)).item() == 0.0
    rgb = x.repeat(1, 3, 1, 1)
    assert torch.allclose(sharpness(rgb), sharp, atol=1e-5)  # luminance of gray RGB is the gray level
