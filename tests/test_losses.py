"""explorer.losses: KL terms, Gaussian likelihoods and the AR-ELBO objectives against closed forms."""
import math

import pytest
import torch
import torch.nn.functional as F
from torch.distributions import Independent, Normal, kl_divergence

from explorer.losses import (LOG_2PI, ar_elbo_reconstruction, gaussian_nll, gaussian_nll_fixed, kl_gaussians, kl_std_normal,
                             sigma2_mle, squared_error)


def test_kl_of_identical_gaussians_is_zero():
    mu, logvar = torch.randn(5, 16), torch.randn(5, 16)
    assert torch.allclose(kl_gaussians(mu, logvar, mu, logvar), torch.zeros(5), atol=1e-6)
    assert torch.allclose(kl_std_normal(torch.zeros(5, 16), torch.zeros(5, 16)), torch.zeros(5))


def test_kl_matches_torch_distributions():
    g = torch.Generator().manual_seed(1)
    mq, lq, mp, lp = (torch.randn(4, 6, generator=g) for _ in range(4))
    q = Independent(Normal(mq, (0.5 * lq).exp()), 1)
    p = Independent(Normal(mp, (0.5 * lp).exp()), 1)
    assert torch.allclose(kl_gaussians(mq, lq, mp, lp), kl_divergence(q, p), atol=1e-5)
    std = Independent(Normal(torch.zeros(4, 6), torch.ones(4, 6)), 1)
    assert torch.allclose(kl_std_normal(mq, lq), kl_divergence(q, std), atol=1e-5)


def test_fixed_variance_nll_is_gaussian_log_likelihood(batch):
    x_hat = torch.rand_like(batch)
    for s2 in (1.0, 0.01):
        ref = -Normal(x_hat, math.sqrt(s2)).log_prob(batch).flatten(1).sum(1)
        assert torch.allclose(gaussian_nll_fixed(batch, x_hat, s2), ref, rtol=1e-5)


def test_iso_i_sigma2_mle_is_batch_mse_per_dimension(batch):
    x_hat = torch.rand_like(batch)
    assert torch.allclose(sigma2_mle(batch, x_hat, "iso-i"), F.mse_loss(x_hat, batch))
    assert torch.allclose(sigma2_mle(batch, x_hat, "iso-i"), squared_error(batch, x_hat).mean() / 784)


def test_sigma2_mle_shapes_and_values(batch):
    x_hat = torch.rand_like(batch)
    err = (batch - x_hat) ** 2
    assert sigma2_mle(batch, x_hat, "iso-d").shape == (8,)
    assert torch.allclose(sigma2_mle(batch, x_hat, "diag-i", eps=0), err.mean(0))
    assert torch.allclose(sigma2_mle(batch, x_hat, "diag-d", eps=0), err)
    with pytest.raises(ValueError, match="iso-x"):
        sigma2_mle(batch, x_hat, "iso-x")


@pytest.mark.parametrize("variance", ["iso-i", "iso-d", "diag-i", "diag-d"])
def test_ar_elbo_reconstruction_is_nll_at_the_mle(batch, variance):
    """J_rec (002 Table 2) equals the Gaussian NLL with Sigma_x at its MLE, per image, batch-averaged."""
    x_hat = torch.rand_like(batch)
    rec, s2 = ar_elbo_reconstruction(batch, x_hat, variance, eps=0.0)
    var = (s2.reshape(-1, 1, 1, 1) if variance == "iso-d" else s2).expand_as(batch)
    nll = -Normal(x_hat, var.sqrt()).log_prob(batch).flatten(1).sum(1).mean()
    assert torch.allclose(rec, nll, rtol=1e-5)


def test_iso_i_objective_is_half_d_log_mse(batch):
    x_hat = torch.rand_like(batch)
    rec, _ = ar_elbo_reconstruction(batch, x_hat, "iso-i")
    d = 784
    expected = 0.5 * d * (1 + LOG_2PI) + 0.5 * d * torch.log(squared_error(batch, x_hat).mean() / d)
    assert torch.allclose(rec, expected)


def test_diag_d_conditional_variance_limits(batch):
    """Sharp posteriors: eq. 51's single-sample error; identical posteriors: every image of the batch
    weighs the same, the batch's mean squared error against each decoded image."""
    from explorer.losses import conditional_sigma2

    g = torch.Generator().manual_seed(1)
    x_hat = torch.rand(batch.shape, generator=g)
    mu = torch.randn(8, 3, generator=g) * 5
    sharp = conditional_sigma2(batch, x_hat, mu, mu, torch.full((8, 3), -20.0), eps=0.0)
    assert torch.allclose(sharp, (batch - x_hat).pow(2), atol=1e-6)
    flat = conditional_sigma2(batch, x_hat, mu, torch.zeros(8, 3), torch.zeros(8, 3), eps=0.0)
    expected = (batch[None] - x_hat[:, None]).pow(2).mean(1)
    assert torch.allclose(flat, expected, atol=1e-5)


def test_diag_d_leave_one_out_variance_never_sees_the_image_it_weighs(batch):
    """Reading 2: sharp posteriors give the squared error of the nearest other code's image;
    identical posteriors give the mean over the other B - 1 images; a batch of one is refused."""
    from explorer.losses import conditional_sigma2

    g = torch.Generator().manual_seed(3)
    x_hat = torch.rand(batch.shape, generator=g)
    mu = torch.randn(8, 3, generator=g) * 5
    sharp = conditional_sigma2(batch, x_hat, mu, mu, torch.full((8, 3), -20.0), eps=0.0, leave_one_out=True)
    d2 = torch.cdist(mu, mu).fill_diagonal_(float("inf"))
    nearest = d2.argmin(1)
    assert torch.allclose(sharp, (batch[nearest] - x_hat).pow(2), atol=1e-6)
    flat = conditional_sigma2(batch, x_hat, mu, torch.zeros(8, 3), torch.zeros(8, 3), eps=0.0, leave_one_out=True)
    err = (batch[None] - x_hat[:, None]).pow(2)  # (b, b', ...)
    expected = (err.sum(1) - err.diagonal(dim1=0, dim2=1).movedim(-1, 0)) / 7
    assert torch.allclose(flat, expected, atol=1e-5)
    # changing image b alone leaves its own variance estimate unchanged
    moved = batch.clone()
    moved[0] = 1.0 - moved[0]
    again = conditional_sigma2(moved, x_hat, mu, torch.zeros(8, 3), torch.zeros(8, 3), eps=0.0, leave_one_out=True)
    assert torch.allclose(again[0], flat[0], atol=1e-6)
    with pytest.raises(ValueError, match="at least 2"):
        conditional_sigma2(batch[:1], x_hat[:1], mu[:1], mu[:1], torch.zeros(1, 3), leave_one_out=True)


def test_diag_d_pooled_variance_is_the_mean_of_eq_51_and_eq_47_and_never_degenerates(batch):
    """Reading 3: σ̂ᵢ²(z_b) = ½ (σ̄ᵢ² + (x_b,i - μᵢ(z_b))²) + ε, σ̄ᵢ² the Diag-I MLE (eq. 47) and the
    squared error eq. 51's MLE; an image decoded exactly keeps half the batch variance, not ε; the
    loss is the NLL at that variance, and its gradient is (μ - x) / σ̂² per pixel."""
    from explorer.losses import AR_ELBO_EPS, LOG_2PI, ar_elbo_reconstruction

    g = torch.Generator().manual_seed(5)
    x_hat = torch.rand(batch.shape, generator=g).requires_grad_(True)
    exact = x_hat.detach().clone()
    exact[0] = batch[0]  # image 0 decoded exactly
    rec, s2 = ar_elbo_reconstruction(batch, exact, "diag-d", pooled=True)
    err = (batch - exact).pow(2)
    expected = 0.5 * (err.mean(0) + err) + AR_ELBO_EPS
    assert torch.allclose(s2, expected, atol=1e-7)
    assert torch.allclose(s2[0], 0.5 * err.mean(0) + AR_ELBO_EPS, atol=1e-7)
    nll = (0.5 * err / expected + 0.5 * (LOG_2PI + expected.log())).flatten(1).sum(1).mean()
    assert torch.isclose(rec, nll, rtol=1e-5)
    rec, s2 = ar_elbo_reconstruction(batch, x_hat, "diag-d", pooled=True)
    rec.backward()
    assert torch.allclose(x_hat.grad, (x_hat.detach() - batch) / s2 / len(batch), atol=1e-5)


def test_diag_d_with_posterior_is_the_nll_at_the_conditional_variance(batch):
    from explorer.losses import conditional_sigma2

    g = torch.Generator().manual_seed(2)
    x_hat, z = torch.rand(batch.shape, generator=g), torch.randn(8, 3, generator=g)
    mu, logvar = z + 0.1 * torch.randn(8, 3, generator=g), torch.full((8, 3), -1.0)
    rec, s2 = ar_elbo_reconstruction(batch, x_hat, "diag-d", posterior=(z, mu, logvar))
    assert torch.equal(s2, conditional_sigma2(batch, x_hat, z, mu, logvar))
    nll = -Normal(x_hat, s2.sqrt()).log_prob(batch).flatten(1).sum(1).mean()
    assert torch.allclose(rec, nll, rtol=1e-5)


def test_gaussian_nll_by_hand():
    z, mu, logvar = torch.tensor([[0.5, -1.0]]), torch.tensor([[0.0, 0.5]]), torch.tensor([[0.0, math.log(4.0)]])
    by_hand = 0.5 * (0.25 / 1 + 0 + math.log(2 * math.pi)) + 0.5 * (2.25 / 4 + math.log(4) + math.log(2 * math.pi))
    assert gaussian_nll(z, mu, logvar).item() == pytest.approx(by_hand, rel=1e-6)

