"""explorer.interpolation: lerp and slerp paths."""
import pytest
import torch

from explorer.interpolation import interpolate, slerp


def test_interpolation_endpoints_and_slerp_norm():
    z0, z1 = torch.tensor([3.0, 0.0]), torch.tensor([0.0, 3.0])
    for method in ("linear", "spherical"):
        path = interpolate(z0, z1, 5, method)
        assert path.shape == (5, 2) and torch.allclose(path[0], z0) and torch.allclose(path[-1], z1, atol=1e-6)
    assert torch.allclose(interpolate(z0, z1, 5, "spherical").norm(dim=1), torch.full((5,), 3.0), atol=1e-5)
    assert interpolate(z0, z1, 5, "linear")[2].norm() < 3.0
    with pytest.raises(ValueError, match="'cubic'"):
        interpolate(z0, z1, 5, "cubic")


def test_batched_slerp_equals_the_single_path_formula():
    z0, z1 = torch.randn(4, 5, dtype=torch.float64), torch.randn(4, 5, dtype=torch.float64)
    t = torch.tensor([0.0, 0.25, 0.5, 1.0], dtype=torch.float64)
    out = slerp(z0, z1, t)
    for b, s in enumerate((0, 1, 2, 4)):  # t = s / 4 on a 5-step path
        torch.testing.assert_close(out[b], interpolate(z0[b], z1[b], 5, "spherical")[s])
    torch.testing.assert_close(slerp(z0, z0, 0.3), z0)  # parallel codes: the linear fallback
