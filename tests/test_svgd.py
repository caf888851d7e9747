"""Tests for explorer.svgd (Stein variational gradient descent, Liu & Wang 2016; seed 000)."""
import math

import numpy as np
import pytest
import torch

from explorer.samplers.gmm import GaussianMixtureSampler
from explorer.svgd import amortized_svgd_loss, median_bandwidth, rbf_kernel, rbf_kernel_grad, svgd_direction, svgd_sample


def _reference(z, score):
    """Plain NumPy SVGD (float64, loops over sets and particles): returns h (B,), K, phi."""
    B, M, d = z.shape
    hs, Ks, phis = np.zeros(B), np.zeros((B, M, M)), np.zeros((B, M, d))
    for b in range(B):
        sq = np.zeros((M, M))
        for i in range(M):
            for j in range(M):
                sq[i, j] = np.sum((z[b, i] - z[b, j]) ** 2)
        pairs = [sq[i, j] for i in range(M) for j in range(i + 1, M)]
        h = np.median(pairs) / np.log(M)
        hs[b] = h
        for i in range(M):
            for j in range(M):
                Ks[b, i, j] = np.exp(-sq[i, j] / h)
        for j in range(M):
            acc = np.zeros(d)
            for i in range(M):
                k = Ks[b, i, j]
                acc += k * score[b, i] - (2.0 / h) * (z[b, i] - z[b, j]) * k
            phis[b, j] = acc / M
    return hs, Ks, phis


@pytest.fixture
def small():
    g = torch.Generator().manual_seed(0)
    z = torch.randn(3, 5, 4, generator=g, dtype=torch.float64)
    z[1] *= 3.0  # sets on different scales -> different bandwidths
    s = torch.randn(3, 5, 4, generator=g, dtype=torch.float64)
    return z, s


def test_matches_numpy_reference(small):
    z, s = small
    h_ref, K_ref, phi_ref = _reference(z.numpy(), s.numpy())
    K, h = rbf_kernel(z)
    assert h.shape == (3, 1, 1) and K.shape == (3, 5, 5)
    np.testing.assert_allclose(h.flatten().numpy(), h_ref, atol=1e-5, rtol=1e-5)
    np.testing.assert_allclose(K.numpy(), K_ref, atol=1e-5)
    np.testing.assert_allclose(svgd_direction(z, s).numpy(), phi_ref, atol=1e-5)
    # float32 path agrees too (looser, single precision)
    phi32 = svgd_direction(z.float(), s.float())
    assert phi32.dtype == torch.float32
    np.testing.assert_allclose(phi32.double().numpy(), phi_ref, atol=1e-4)


def test_median_bandwidth_is_paper_form_and_clamped():
    # 3 particles on a line at 0, 1, 3: pair sq dists 1, 9, 4 -> median 4, h = 4 / log 3
    z = torch.tensor([[[0.0], [1.0], [3.0]]])
    _, h = rbf_kernel(z)
    assert h.item() == pytest.approx(4.0 / math.log(3.0), rel=1e-6)
    # identical particles: h clamped positive, direction finite and equal to the mean score
    zs = torch.ones(2, 4, 3)
    s = torch.randn(2, 4, 3)
    phi = svgd_direction(zs, s)
    assert torch.isfinite(phi).all()
    torch.testing.assert_close(phi, s.mean(dim=1, keepdim=True).expand_as(s))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_dtypes(small, dtype):
    z, s = small
    phi = svgd_direction(z.to(dtype), s.to(dtype))
    assert phi.dtype == dtype
    torch.testing.assert_close(phi.double(), svgd_direction(z, s), atol=3e-2, rtol=3e-2)


def test_kernel_grad_matches_autograd(small):
    z, _ = small
    h = 1.7
    K, _ = rbf_kernel(z, h)
    G = rbf_kernel_grad(z, K, h)
    assert G.shape == (3, 5, 5, 4)
    a = z.clone().requires_grad_()
    Kab = torch.exp(-((a.unsqueeze(2) - z.unsqueeze(1)) ** 2).sum(-1) / h)  # k(a_i, z_j), z fixed
    for j in range(z.shape[1]):
        (g,) = torch.autograd.grad(Kab[:, :, j].sum(), a, retain_graph=True)  # grad w.r.t. each a_i of k(a_i, z_j)
        torch.testing.assert_close(G[:, :, j, :], g)


def test_direction_uses_closed_form_consistently_with_kernel_grad(small):
    z, s = small
    K, h = rbf_kernel(z)
    phi = (K.transpose(1, 2) @ s + rbf_kernel_grad(z, K, h).sum(dim=1)) / z.shape[1]
    torch.testing.assert_close(svgd_direction(z, s), phi)


def test_direction_is_differentiable(small):
    z, s = small
    z = z[:2, :4, :3].clone().requires_grad_()
    s = s[:2, :4, :3].clone().requires_grad_()
    assert torch.autograd.gradcheck(svgd_direction, (z, s))


def test_unbatched_equals_batch_of_one(small):
    z, s = small
    phi1 = svgd_direction(z[0], s[0])
    assert phi1.shape == (5, 4)
    torch.testing.assert_close(phi1, svgd_direction(z[:1], s[:1])[0])


def test_sets_are_independent(small):
    z, s = small
    phi = svgd_direction(z, s)
    z2, s2 = z.clone(), s.clone()
    z2[1] = z2[1] * 10 + 5
    s2[1] = -s2[1]
    phi2 = svgd_direction(z2, s2)
    torch.testing.assert_close(phi2[0], phi[0], rtol=0, atol=1e-12)
    torch.testing.assert_close(phi2[2], phi[2], rtol=0, atol=1e-12)
    assert not torch.allclose(phi2[1], phi[1])


def test_translation_invariant_in_float32():
    # phi depends only on differences of particles; a set far from the origin must not lose precision
    g = torch.Generator().manual_seed(1)
    z = torch.randn(2, 16, 8, generator=g) * 0.1
    s = torch.randn(2, 16, 8, generator=g)
    torch.testing.assert_close(svgd_direction(z + 1000.0, s), svgd_direction(z, s), atol=1e-3, rtol=1e-3)


def test_bad_inputs_raise():
    z = torch.zeros(2, 5, 3)
    with pytest.raises(ValueError, match=r"\(2, 5, 3\).*\(2, 5, 4\)"):
        svgd_direction(z, torch.zeros(2, 5, 4))
    with pytest.raises(ValueError, match="float32 and torch.float64"):
        svgd_direction(z, z.double())
    with pytest.raises(ValueError, match=r"\(5,\)"):
        svgd_direction(torch.zeros(5), torch.zeros(5))
    with pytest.raises(ValueError, match="M = 1"):
        svgd_direction(torch.zeros(2, 1, 3), torch.zeros(2, 1, 3))
    with pytest.raises(ValueError, match="M = 1"):
        median_bandwidth(torch.zeros(4, 1, 1))
    with pytest.raises(ValueError, match=r"-0\.5"):
        svgd_direction(z, z, h=-0.5)
    score = lambda x: -x  # noqa: E731
    for bad in (0.0, -0.1):
        with pytest.raises(ValueError, match=f"step_size.*{bad}"):
            svgd_sample(score, torch.randn(5, 2), steps=3, step_size=bad)
    with pytest.raises(ValueError, match="steps.*-1"):
        svgd_sample(score, torch.randn(5, 2), steps=-1, step_size=0.1)
    with pytest.raises(ValueError, match=r"\(5, 2\).*\(5, 3\)"):
        svgd_sample(lambda x: torch.zeros(5, 3), torch.randn(5, 2), steps=1, step_size=0.1)


def test_sample_trajectory_and_no_graph():
    init = torch.randn(2, 10, 3)
    final, traj = svgd_sample(lambda x: -x, init, steps=4, step_size=0.1, return_trajectory=True)
    assert traj.shape == (5, 2, 10, 3)
    torch.testing.assert_close(traj[0], init)
    torch.testing.assert_close(traj[-1], final)
    assert not final.requires_grad
    assert torch.equal(svgd_sample(lambda x: -x, init, steps=0, step_size=0.1), init)


M_TARGET = torch.tensor([1.0, -2.0])
S_TARGET = torch.tensor([[1.0, 0.5], [0.5, 2.0]])


@pytest.mark.parametrize("adagrad,steps,step_size", [(False, 800, 0.5), (True, 400, 0.1)])
def test_gaussian_target_moments(adagrad, steps, step_size):
    """200 particles from a shifted N((-3, 3), 0.25 I) reach N(m, S): mean within 0.1, cov within 0.25."""
    torch.manual_seed(0)
    prec = torch.linalg.inv(S_TARGET)
    init = torch.randn(200, 2) * 0.5 + torch.tensor([-3.0, 3.0])
    z = svgd_sample(lambda x: -(x - M_TARGET) @ prec, init, steps, step_size, adagrad=adagrad)
    mean_err = (z.mean(0) - M_TARGET).abs().max().item()
    cov_err = (torch.cov(z.T) - S_TARGET).abs().max().item()
    assert mean_err < 0.1, f"mean {z.mean(0).tolist()} vs {M_TARGET.tolist()}"
    assert cov_err < 0.25, f"cov {torch.cov(z.T).tolist()} vs {S_TARGET.tolist()}"


def test_mixture_target_covers_both_modes():
    """0.5 N((-3,0), I) + 0.5 N((3,0), I) from N(0, I): each mode holds >= 25% of the particles."""
    torch.manual_seed(0)
    mus = torch.tensor([[-3.0, 0.0], [3.0, 0.0]])

    def score(x):  # via autograd, to check svgd_sample lets score_fn use it
        x.requires_grad_()
        logp = torch.logsumexp(-0.5 * ((x.unsqueeze(1) - mus) ** 2).sum(-1), dim=1).sum()
        return torch.autograd.grad(logp, x)[0]

    z = svgd_sample(score, torch.randn(200, 2), steps=300, step_size=0.5)
    for mu in mus:
        share = ((torch.sign(z[:, 0]) == torch.sign(mu[0])) & ((z - mu).norm(dim=1) < 2)).float().mean().item()
        assert share >= 0.25, f"mode {mu.tolist()} holds only {share:.0%} of the particles"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU")
def test_cuda_matches_cpu(small):
    z, s = small
    torch.testing.assert_close(svgd_direction(z.cuda(), s.cuda()).cpu(), svgd_direction(z, s))


def test_the_amortized_loss_gradient_is_the_svgd_direction_within_each_set():
    """d(loss)/dz = -φ / N, with φ computed within each set (the sets do not see each other); the GMM's
    score is that of its log-density (a one-component GMM at N(0, I): -z)."""
    g = torch.Generator().manual_seed(0)
    zs = torch.cat([torch.randn(5, 3, generator=g), 10 + torch.randn(5, 3, generator=g)]).requires_grad_(True)
    normal = GaussianMixtureSampler(3, 1)  # unfitted buffers: weight 1, mean 0, identity covariance
    assert torch.allclose(normal.score(zs), -zs.detach(), atol=1e-6)
    loss, phi_out = amortized_svgd_loss(zs, normal.score(zs), sets=2, kernel_scale=2.0)
    grad = torch.autograd.grad(loss, zs)[0]
    zz = zs.detach().view(2, 5, 3)
    phi = svgd_direction(zz, -zz, h=median_bandwidth(torch.cdist(zz, zz).pow(2)) * 2.0).reshape(10, 3)
    assert torch.allclose(grad, -phi / 10, atol=1e-6) and torch.allclose(phi_out, phi)
    alone = torch.autograd.grad(amortized_svgd_loss(zs[:5], -zs[:5].detach(), sets=1, kernel_scale=2.0)[0], zs)[0][:5]
    assert torch.allclose(grad[:5] * 10, alone * 5, atol=1e-6)  # the second set changes nothing in the first
