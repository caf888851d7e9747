"""Ex-post latent samplers: Gaussian mixtures on encoder means.

``GaussianMixtureSampler`` fits a K-component full-covariance GMM (scikit-learn) on encoder
means of the training set, as AR-ELBO (seed 002 §5, after Ghosh et al. 2020) does with
GMM-10 and GMM-100, and samples from it in torch. Its parameters live in buffers, so they
travel with the weights in a safetensors file; no pickled sklearn object is stored.

The sampler named ``gmm-10`` (K = 10) is stored inside each checkpoint (state-dict keys
``gmm.*``); ``gmm-100`` and the two-stage VAE live in a sidecar file (:mod:`explorer.samplers.sidecar`).
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn


class GaussianMixtureSampler(nn.Module):
    """GMM over latent codes, ``(n, d)`` samples.

    Buffers: ``weights (K,)``, ``means (K, d)``, ``scale_tril (K, d, d)`` (Cholesky factors of
    the covariances), ``fitted ()`` (1 once :meth:`fit` has run).
    """

    def __init__(self, latent_dim: int, n_components: int = 10):
        super().__init__()
        self.register_buffer("weights", torch.full((n_components,), 1.0 / n_components))
        self.register_buffer("means", torch.zeros(n_components, latent_dim))
        self.register_buffer("scale_tril", torch.eye(latent_dim).repeat(n_components, 1, 1))
        self.register_buffer("fitted", torch.tensor(0, dtype=torch.uint8))

    @property
    def n_components(self) -> int:
        return self.weights.shape[0]

    @property
    def is_fitted(self) -> bool:
        return bool(self.fitted.item())


    def fit(self, codes: torch.Tensor, seed: int = 0) -> "GaussianMixtureSampler":
        """Fit on codes ``(N, d)`` with sklearn's GaussianMixture (full covariances, reg 1e-6,
        k-means initialisation, at most 100 EM iterations, tolerance 1e-3, ``random_state=seed``).
        Sets ``self.fit_info`` (``converged``, ``n_iter``, ``lower_bound``; not saved).

        Raises:
            ValueError: codes are not ``(N, d)`` with N >= K.
        """
        from sklearn.mixture import GaussianMixture

        d = self.means.shape[1]
        if codes.dim() != 2 or codes.shape[1] != d or codes.shape[0] < self.n_components:
            raise ValueError(f"GMM fit needs codes of shape (N >= {self.n_components}, {d}), got {tuple(codes.shape)}")
        gm = GaussianMixture(self.n_components, covariance_type="full", random_state=seed, reg_covar=1e-6)
        gm.fit(codes.detach().cpu().double().numpy())
        self.fit_info = {"converged": bool(gm.converged_), "n_iter": int(gm.n_iter_),
                         "lower_bound": float(gm.lower_bound_)}  # not saved; for logs
        self.weights.copy_(torch.from_numpy(gm.weights_).float())
        self.means.copy_(torch.from_numpy(gm.means_).float())
        self.scale_tril.copy_(torch.from_numpy(np.linalg.cholesky(gm.covariances_)).float())
        self.fitted.fill_(1)
        return self

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Draw ``n`` codes ``(n, d)``: component k ~ Cat(weights), z = mean_k + L_k eps."""
        if not self.is_fitted:
            raise RuntimeError("the GMM sampler has not been fitted")
        k = torch.multinomial(self.weights.cpu(), n, replacement=True, generator=generator)
        eps = torch.randn(n, self.means.shape[1], 1, generator=generator)
        z = self.means.cpu()[k] + (self.scale_tril.cpu()[k] @ eps).squeeze(-1)
        return z.to(self.means.device)

    def score(self, z: torch.Tensor) -> torch.Tensor:
        """``grad_z log p(z)`` at codes ``(n, d)`` -> ``(n, d)`` (units 1/z), without a graph."""
        zd = z.detach().requires_grad_(True)
        with torch.enable_grad():
            return torch.autograd.grad(self.log_prob(zd).sum(), zd)[0]

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        """log density of codes ``(n, d)`` -> ``(n,)`` nats."""
        comp = torch.distributions.MultivariateNormal(self.means, scale_tril=self.scale_tril)
        return torch.logsumexp(comp.log_prob(z[:, None, :]) + self.weights.log(), dim=1)
