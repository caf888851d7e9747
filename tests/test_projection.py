"""explorer.projection."""
import numpy as np
import pytest

from explorer.projection import Projection


def test_projection_validation_and_linear_map():
    z = np.random.default_rng(0).normal(size=(50, 5)).astype(np.float32)
    with pytest.raises(ValueError, match="'tsne'"):
        Projection("tsne")
    with pytest.raises(ValueError, match="d = 2, got d = 5"):
        Projection("identity").fit(z)
    p = Projection("pca").fit(z)
    mean, comps = p.linear_map()
    assert np.allclose((z - mean) @ comps.T, p.transform(z), atol=1e-5)
    with pytest.raises(ValueError, match="d = 5, got codes with d = 3"):
        p.transform(z[:, :3])
