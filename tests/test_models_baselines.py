"""Deterministic-encoder baselines: AE, RAE-L2, RAE-GP (Ghosh et al. 2020), WAE-MMD (Tolstikhin et al. 2018).

Every loss term is checked against a hand computation; the API, a few training steps and the
checkpoint round trip are checked for every shipped baseline."""
import math

import copy
import pytest
import torch
from torch import nn

import explorer
from explorer.checkpoint import save
from explorer.evaluate import drift
from explorer.models import MODELS, ZOO, build_model
from explorer.models.rae import (RAE_BETA, RAE_LAMBDA, decoder_weight_l2, forward_plain_batchnorm, jacobian_sq_norm,
                                 latent_l2)
from explorer.models.wae import IMQ_SCALES, imq_kernel, mmd_imq
from explorer.training import train_step


BASELINES = ["ae", "rae-l2", "rae-gp", "wae-mmd"]


D = 28 * 28


def build(name, **extra):
    family, overrides = ZOO[name]
    return build_model(family, **overrides, **extra)


def constant_nets(model, code, weight=0.0, bias=0.0):
    """Replace the nets: E(x) = ``code`` for every image; D(z) = sigmoid(weight * 1ᵀz + bias) per pixel."""
    d = model.latent_dim
    enc = nn.Sequential(nn.Flatten(), nn.Linear(D, d))
    dec = nn.Sequential(nn.Linear(d, D), nn.Unflatten(1, (1, 28, 28)))
    with torch.no_grad():
        enc[1].weight.zero_()
        enc[1].bias.copy_(torch.as_tensor(code, dtype=torch.float32))
        dec[0].weight.fill_(weight)
        dec[0].bias.fill_(bias)
    model.encoder, model.decoder = enc, dec
    return model


@pytest.fixture
def black_white():
    """Two images: all black and all white."""
    return torch.stack([torch.zeros(1, 28, 28), torch.ones(1, 28, 28)])


# ---- registry and API -----------------------------------------------------------------------
def test_zoo_names_families_and_documented_defaults():
    for name in BASELINES:
        model = build(name)
        assert model.config.default_name() == name
        assert model.gaussian_encoder is False and model.trainer == "elbo"
        assert MODELS[model.family] is type(model)
    rae_l2, rae_gp, wae = build("rae-l2").config, build("rae-gp").config, build("wae-mmd").config
    assert rae_l2.beta == rae_gp.beta == pytest.approx(1e-4 * 1024 * 2 / 16) == RAE_BETA == pytest.approx(0.0128)
    assert rae_l2.lam == pytest.approx(1.024e-4) and rae_gp.lam == pytest.approx(0.01) == RAE_LAMBDA["gp"]
    assert wae.lam == 10.0 and IMQ_SCALES == (0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0)


def test_bad_configs_are_refused_with_the_choices_named():
    with pytest.raises(ValueError, match="'l1'.*gp"):
        build_model("rae", regularizer="l1")
    with pytest.raises(ValueError, match="lam"):
        build_model("rae", lam=-1.0)
    with pytest.raises(ValueError, match="gp_probes"):
        build_model("rae", regularizer="gp", gp_probes=-1)
    with pytest.raises(ValueError, match="lam"):
        build_model("wae-mmd", lam=-0.1)
    with pytest.raises(ValueError, match="'tiny'.*small"):
        build_model("ae", profile="tiny")
    with pytest.raises(ValueError, match="beta"):
        build_model("ae", beta=1.0)


@pytest.mark.parametrize("name", BASELINES)
def test_deterministic_encoder_api(name, batch):
    model = build(name).eval()
    with torch.no_grad():
        z = model.encode(batch)
        assert z.shape == (8, 16) and torch.equal(model.encode(batch), z)
        draws = model.posterior_samples(batch, 3)
        assert draws.shape == (8, 3, 16) and torch.equal(draws, z[:, None].expand(8, 3, 16))
        x = model.decode(z)
        assert x.shape == batch.shape and 0 <= x.min() and x.max() <= 1
        d = drift(model, batch)  # the evaluate/app path for gaussian_encoder=False
    assert set(d) == {"mu", "mu2", "drift_sq"} and torch.equal(d["mu"], z)
    with pytest.raises(NotImplementedError, match="deterministic encoder.*encode"):
        model.posterior(batch)
    with pytest.raises(ValueError, match="positive"):
        model.posterior_samples(batch, 0)
    with pytest.raises(ValueError, match="1, 28, 28"):
        model.encode(torch.zeros(2, 1, 32, 32))
    assert model.samplers == ["prior"] and model.sigma2_estimate() is None


# ---- losses against hand computations -------------------------------------------------------
def test_ae_loss_is_the_batch_mean_of_per_image_sse(black_white):
    model = constant_nets(build("ae"), torch.zeros(16))  # D(z) = sigmoid(0) = 0.5 everywhere
    terms = model.loss(black_white)
    assert set(terms) == {"loss", "rec"}  # no kl: there is no q(z|x)
    assert terms["rec"].item() == pytest.approx(784 * 0.25)  # both images: 784 pixels, each off by 0.5
    assert terms["loss"].item() == pytest.approx(196.0)


def test_rae_latent_term_is_half_squared_norm():
    z = torch.tensor([[3.0, 4.0], [1.0, -1.0]])
    assert latent_l2(z).tolist() == [12.5, 1.0]
    with pytest.raises(ValueError):
        latent_l2(torch.zeros(3))


def test_decoder_weight_l2_sums_squared_weight_tensors_only():
    dec = nn.Sequential(nn.Linear(2, 3), nn.BatchNorm1d(3), nn.Linear(3, 1))
    with torch.no_grad():
        dec[0].weight.copy_(torch.tensor([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]))  # 1+4+9+16+25+36 = 91
        dec[2].weight.fill_(1.0)  # 3
        dec[0].bias.fill_(10.0)  # biases and batch-norm affine parameters are not decayed
        dec[1].weight.fill_(7.0)
    assert decoder_weight_l2(dec).item() == 94.0
    with pytest.raises(ValueError, match="no weight"):
        decoder_weight_l2(nn.ReLU())


def test_rae_l2_loss_adds_beta_latent_and_lambda_weight_decay(black_white):
    model = constant_nets(build("rae-l2", beta=0.5, lam=2.0), torch.tensor([3.0, 4.0] + [0.0] * 14), weight=0.01)
    terms = model.loss(black_white)
    # 1ᵀz = 7, so every pixel is sigmoid(0.07); encoder weights are not decayed
    p = 1 / (1 + math.exp(-0.07))
    rec = 784 * (p ** 2 + (1 - p) ** 2) / 2
    assert terms["rec"].item() == pytest.approx(rec, rel=1e-5)
    assert terms["latent"].item() == pytest.approx(12.5)
    assert terms["reg"].item() == pytest.approx(16 * 784 * 1e-4, rel=1e-5)
    assert terms["loss"].item() == pytest.approx(rec + 0.5 * 12.5 + 2.0 * 16 * 784 * 1e-4, rel=1e-5)


def test_gradient_penalty_of_a_linear_decoder_is_its_frobenius_norm():
    g = torch.Generator().manual_seed(0)
    w = torch.randn(5, 3, generator=g)  # x = W z: J = W everywhere
    z = torch.randn(4, 3, generator=g)
    out, exact = jacobian_sq_norm(lambda c: c @ w.T, z, probes=0)
    assert torch.allclose(out, z @ w.T)
    assert torch.allclose(exact, w.pow(2).sum().expand(4), rtol=1e-6)
    _, hutchinson = jacobian_sq_norm(lambda c: c @ w.T, z, probes=4000, generator=g)
    assert torch.allclose(hutchinson, exact, rtol=0.03)
    _, one = jacobian_sq_norm(lambda c: c @ w.T, z, probes=1, generator=g)
    assert not torch.allclose(one, exact)  # one probe is an estimate, not the value
    with pytest.raises(ValueError, match="probes"):
        jacobian_sq_norm(lambda c: c, z, probes=-1)


def test_gradient_penalty_matches_finite_differences_on_the_real_decoder():
    torch.manual_seed(0)
    model = build("rae-gp").double().eval()
    z = torch.randn(2, 16, dtype=torch.float64)
    _, exact = jacobian_sq_norm(model.decode, z, probes=0)
    h, eye = 1e-6, torch.eye(16, dtype=torch.float64)
    for b in range(2):  # central differences, one batched decoder call: columns J e_k, (16, 784)
        with torch.no_grad():
            cols = (model.decode(z[b] + h * eye) - model.decode(z[b] - h * eye)).flatten(1) / (2 * h)
        assert exact[b].item() == pytest.approx(cols.pow(2).sum().item(), rel=1e-6)


def test_rae_gp_loss_with_a_linear_decoder(black_white):
    w = 0.02
    model = constant_nets(build("rae-gp", lam=3.0, gp_probes=0), torch.zeros(16), weight=w)
    terms = model.loss(black_white)
    # z = 0: pixels sigmoid(0) = 0.5, J = sigmoid'(0) W = W / 4, ||J||_F² = 784 * 16 * (w / 4)²
    gp = 784 * 16 * (w / 4) ** 2
    assert terms["reg"].item() == pytest.approx(gp, rel=1e-5)
    assert terms["latent"].item() == 0.0
    assert terms["loss"].item() == pytest.approx(196.0 + 3.0 * gp, rel=1e-5)


def test_plain_batchnorm_forward_matches_and_gives_correct_penalty_gradients():
    """The GP's gradient for a weight before a training-mode batch norm matches finite
    differences (PyTorch's fused batch norm gets it wrong in forward-over-reverse mode)."""
    torch.manual_seed(0)
    model = build("rae-gp").double().train()
    ref = copy.deepcopy(model.decoder)
    z = torch.randn(4, 16, dtype=torch.float64)
    v = torch.randn(4, 16, dtype=torch.float64)
    assert torch.allclose(forward_plain_batchnorm(model.decoder, z), ref(z), atol=1e-12)
    bn, bn_ref = model.decoder[1], ref[1]
    assert torch.allclose(bn.running_mean, bn_ref.running_mean) and torch.allclose(bn.running_var, bn_ref.running_var)
    assert bn.num_batches_tracked.item() == bn_ref.num_batches_tracked.item() == 1

    def penalty():
        import torch.autograd.forward_ad as fwAD
        with fwAD.dual_level():
            _, jv = fwAD.unpack_dual(model.decode_plain_batchnorm(fwAD.make_dual(z, v)))
        return jv.pow(2).sum()

    w = model.decoder[0].weight  # the first linear layer, before a batch norm
    penalty().backward()
    analytic = w.grad[11, 5].item()
    with torch.no_grad():
        w[11, 5] += 1e-6
        up = penalty().item()
        w[11, 5] -= 2e-6
        down = penalty().item()
    assert analytic == pytest.approx((up - down) / 2e-6, rel=1e-4)
    with pytest.raises(ValueError, match="Sequential"):
        forward_plain_batchnorm(nn.Linear(2, 2), z)


def test_imq_kernel_and_mmd_against_a_python_double_loop():
    g = torch.Generator().manual_seed(0)
    q = torch.randn(3, 2, generator=g, dtype=torch.float64)
    p = torch.randn(4, 2, generator=g, dtype=torch.float64) + 1.0

    def k(a, b):  # C_s = 2 d sigma² s, d = 2, sigma² = 1
        r = sum((ai - bi) ** 2 for ai, bi in zip(a, b))
        return sum(4 * s / (4 * s + r) for s in (0.1, 0.2, 0.5, 1, 2, 5, 10))

    ql, pl = q.tolist(), p.tolist()
    kqq = sum(k(ql[i], ql[j]) for i in range(3) for j in range(3) if i != j) / (3 * 2)
    kpp = sum(k(pl[i], pl[j]) for i in range(4) for j in range(4) if i != j) / (4 * 3)
    kqp = sum(k(a, b) for a in ql for b in pl) / 12
    assert imq_kernel(q, p)[1, 2].item() == pytest.approx(k(ql[1], pl[2]), rel=1e-12)
    assert imq_kernel(q, q).diagonal().tolist() == [7.0] * 3  # k(x, x) = number of scales
    assert mmd_imq(q, p).item() == pytest.approx(kqq + kpp - 2 * kqp, rel=1e-12)
    with pytest.raises(ValueError, match="n >= 2"):
        mmd_imq(q[:1], p)
    with pytest.raises(ValueError):
        imq_kernel(q, torch.zeros(2, 3))


def test_mmd_is_near_zero_for_the_same_distribution_and_grows_with_a_shift():
    g = torch.Generator().manual_seed(1)
    same = mmd_imq(torch.randn(400, 16, generator=g), torch.randn(400, 16, generator=g)).item()
    shifted = mmd_imq(torch.randn(400, 16, generator=g) + 1.0, torch.randn(400, 16, generator=g)).item()
    assert abs(same) < 0.01 and shifted > 0.2


def test_wae_loss_is_rec_plus_lambda_mmd_against_fresh_prior_draws(batch):
    model = build("wae-mmd", lam=7.0)
    torch.manual_seed(3)
    terms = model.loss(batch)
    assert set(terms) == {"loss", "rec", "mmd"}
    with torch.no_grad():  # same weights, batch-norm statistics of the same batch: the same codes
        z = model.train().encode(batch)
    torch.manual_seed(3)
    assert terms["mmd"].item() == pytest.approx(mmd_imq(z, torch.randn(8, 16)).item(), rel=1e-5)
    assert terms["loss"].item() == pytest.approx(terms["rec"].item() + 7.0 * terms["mmd"].item(), rel=1e-6)


# ---- training and checkpoints ---------------------------------------------------------------
@pytest.mark.parametrize("name", BASELINES)
def test_training_steps_change_the_nets_and_lower_the_loss(name, batch):
    torch.manual_seed(0)
    model = build(name)
    before = copy.deepcopy(model.state_dict())
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    first = train_step(model, opt, batch)
    for part in ("encoder", "decoder"):
        assert any(not torch.equal(v, before[k]) for k, v in model.state_dict().items() if k.startswith(part)), part
    for _ in range(4):
        last = train_step(model, opt, batch)
    assert last["rec"] < first["rec"]


@pytest.mark.parametrize("name", BASELINES)
def test_save_load_round_trip(name, tmp_path, batch):
    torch.manual_seed(0)
    model = build(name)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    train_step(model, opt, batch)  # moves the batch-norm running statistics off their defaults
    model.eval()
    with torch.no_grad():  # a "fitted" GMM sampler without the sklearn fit
        model.gmm.means.normal_()
        model.gmm.fitted.fill_(1)
    path = save(model, tmp_path / f"{name}.safetensors", meta={"name": name})
    loaded = explorer.load(path)
    assert type(loaded) is type(model) and loaded.config == model.config
    assert loaded.config.default_name() == name and loaded.samplers == model.samplers and len(model.samplers) == 2
    with torch.no_grad():
        assert torch.equal(loaded.encode(batch), model.encode(batch))
        z = torch.randn(5, 16)
        assert torch.equal(loaded.decode(z), model.decode(z))
