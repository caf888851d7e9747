"""The second-stage VAE of Dai & Wipf (2019), "Diagnosing and Enhancing VAE Models" (ICLR), §4:
a VAE on a trained model's codes z, with a latent u of the same size d and a learned decoder
variance γ; new codes are z ~ N(μ_θ(u), γ I), u ~ N(0, I) (the ``two-stage`` sampler).

The model only: no files, no datasets. It is fitted on codes by :meth:`SecondStageVAE.fit` and
stored in a sidecar by :mod:`explorer.samplers.sidecar`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn
from tqdm.auto import tqdm

from ..configs import DictConfig


@dataclass
class TwoStageConfig(DictConfig):
    """Hyperparameters of :class:`SecondStageVAE` and its training.

    Dai & Wipf (2019) §4 and their code (github.com/daib13/TwoStageVAE, ``build_encoder2``/
    ``build_decoder2``/``demo.py``): MLP encoder and decoder of ``second_depth`` = 3 ReLU layers of
    ``second_dim`` = 1024 units, each with a skip connection that concatenates the MLP input to
    the last hidden layer before the output layers, latent u of the same size d as z, log γ a
    free scalar initialised at 0, Adam at 1e-4 for 800 epochs (halved every 300), batch 64.
    Here, for d = 16 codes on one CPU thread (``hidden``, ``depth``, ``epochs``, ``lr`` and
    ``batch_size`` are budget choices, not the paper's): 2 layers of 128 units, Adam at 2e-3
    with cosine decay to 1 % over 30 epochs of batch 256 (about 45k parameters; the loss
    history in the sidecar shows whether it has flattened out), on standardised codes.

    Attributes:
        hidden: width of every hidden layer.
        depth: number of hidden ReLU layers in the encoder and in the decoder.
        epochs: passes over the codes.
        batch_size: codes per step.
        lr: Adam's initial learning rate; cosine-annealed to ``lr * 0.01`` at the last step.
        normalize: the affine map applied to the codes before training, undone on samples:
            ``standardize`` (default): (z - mean) / std per dimension (std floored at 1e-6 of
            the largest); ``whiten``: (z - mean) U Λ^(-1/2) from the eigendecomposition U Λ Uᵀ
            of the codes' covariance; ``none``. Not in Dai & Wipf, whose first-stage codes are
            already about N(0, I); codes of autoencoders without a KL term can have any scale.
            Whitening makes a Gaussian's codes pure noise to the second stage, which then
            explains them with γ ≈ 1 and a constant decoder mean (posterior collapse): right
            for ``sample(noise=True)``, useless for the decoder-mean sampler; hence not the default.
    """

    hidden: int = 128
    depth: int = 2
    epochs: int = 30
    batch_size: int = 256
    lr: float = 2e-3
    normalize: str = "standardize"

    def __post_init__(self):
        if self.normalize not in ("whiten", "standardize", "none"):
            raise ValueError(f"normalize must be whiten, standardize or none, got {self.normalize!r}")


class _SkipMLP(nn.Module):
    """``depth`` ReLU layers of ``hidden`` units, then a linear head on ``[input, last hidden]``
    (Dai & Wipf's ``tf.concat([z, t], -1)``): ``(B, d_in)`` -> ``(B, d_out)``."""

    def __init__(self, d_in: int, d_out: int, hidden: int, depth: int):
        super().__init__()
        layers, width = [], d_in
        for _ in range(depth):
            layers += [nn.Linear(width, hidden), nn.ReLU()]
            width = hidden
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(d_in + (hidden if depth else 0), d_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.cat([x, self.body(x)], dim=1) if len(self.body) else x)


class SecondStageVAE(nn.Module):
    """The second-stage VAE of Dai & Wipf (2019), §4 ("two-stage VAE"), on codes ``z (N, d)``.

    Model: u ~ N(0, I_d), z | u ~ N(μ_θ(u), γ I_d) with a learned scalar variance γ (the paper's
    eq. for the second stage mirrors its first stage, §2-3: γ -> 0 lets the decoder fit codes
    that lie near a manifold); encoder q(u|z) = N(μ_φ(z), diag σ_φ²(z)). Loss per code
    (nats, the negative ELBO, one reparameterised draw of u):

        ||z - μ_θ(u)||² / (2γ) + (d/2) log(2πγ) + KL(q(u|z) || N(0, I)).

    Sampling (the ``two-stage`` sampler): u ~ N(0, I), z = μ_θ(u) + √γ ε, ε ~ N(0, I): a draw
    from the fitted density p(z) = ∫ N(z; μ_θ(u), γ I) N(u; 0, I) du, as Dai & Wipf's
    ``generate`` does (github.com/daib13/TwoStageVAE, ``z = z_hat + gamma_z * noise``).
    ``sample(noise=False)`` gives the decoder mean μ_θ(u) alone; not the default because on
    codes close to Gaussian the second stage collapses (γ ≈ 1, constant μ_θ) and every decoder
    mean lands on the codes' mean (measurements in ``docs/readings.md``).

    Buffers: ``shift (d,)``, ``norm_map (d, d)``, ``denorm_map (d, d)`` (the normalisation
    z' = (z - shift) @ norm_map, z = shift + z' @ denorm_map; see :class:`TwoStageConfig`),
    ``fitted ()``. Parameters: ``encoder``, ``decoder``
    (:class:`_SkipMLP`), ``log_gamma ()``.
    """

    def __init__(self, latent_dim: int, hidden: int = 128, depth: int = 2):
        super().__init__()
        if latent_dim < 1 or hidden < 1 or depth < 0:
            raise ValueError(f"bad SecondStageVAE sizes: latent_dim {latent_dim}, hidden {hidden}, depth {depth}")
        self.latent_dim = latent_dim
        self.encoder = _SkipMLP(latent_dim, 2 * latent_dim, hidden, depth)
        self.decoder = _SkipMLP(latent_dim, latent_dim, hidden, depth)
        self.log_gamma = nn.Parameter(torch.zeros(()))
        self.register_buffer("shift", torch.zeros(latent_dim))
        self.register_buffer("norm_map", torch.eye(latent_dim))
        self.register_buffer("denorm_map", torch.eye(latent_dim))
        self.register_buffer("fitted", torch.tensor(0, dtype=torch.uint8))

    @property
    def is_fitted(self) -> bool:
        return bool(self.fitted.item())

    @property
    def gamma(self) -> float:
        """The learned decoder variance γ, in normalised code units²."""
        return float(self.log_gamma.detach().exp())

    def loss(self, z: torch.Tensor) -> dict[str, torch.Tensor]:
        """Negative ELBO of normalised codes ``z (B, d)``: dict of scalars (batch means, nats)
        ``loss`` = ``rec`` + ``kl``, and ``gamma``."""
        mu_u, logvar_u = self.encoder(z).chunk(2, dim=1)
        logvar_u = logvar_u.clamp(-30.0, 20.0)
        u = mu_u + (0.5 * logvar_u).exp() * torch.randn_like(mu_u)
        z_hat = self.decoder(u)
        log_gamma = self.log_gamma.clamp(min=-30.0)
        d = z.shape[1]
        rec = ((z - z_hat).pow(2).sum(1) / (2 * log_gamma.exp()) + 0.5 * d * (math.log(2 * math.pi) + log_gamma))
        kl = 0.5 * (mu_u.pow(2) + logvar_u.exp() - 1.0 - logvar_u).sum(1)
        rec, kl = rec.mean(), kl.mean()
        return {"loss": rec + kl, "rec": rec, "kl": kl, "gamma": log_gamma.detach().exp()}

    def fit(self, codes: torch.Tensor, config: TwoStageConfig | None = None, seed: int = 0,
            progress: bool = True, desc: str = "two-stage") -> list[dict]:
        """Train on codes ``(N, d)`` (any device: training runs where the module is).

        Deterministic for a given seed, device and thread count (its own RNG stream; the
        global torch RNG is restored afterwards). Prints a tqdm bar per run when ``progress``.

        Returns:
            the history: one dict per epoch with the epoch means of ``loss``, ``rec``, ``kl``
            (nats per code) and the final ``gamma``.

        Raises:
            ValueError: codes are not ``(N, d)`` with N >= 2, or contain NaN/inf.
        """
        cfg = config or TwoStageConfig()
        d = self.latent_dim
        if codes.dim() != 2 or codes.shape[1] != d or codes.shape[0] < 2:
            raise ValueError(f"two-stage fit needs codes of shape (N >= 2, {d}), got {tuple(codes.shape)}")
        if not torch.isfinite(codes).all():
            raise ValueError("two-stage fit: the codes contain NaN or inf")
        dev = self.log_gamma.device
        codes = codes.detach().to(dev, torch.float32)
        with torch.no_grad():
            self._fit_normalization(codes, cfg.normalize)
        data = (codes - self.shift) @ self.norm_map
        n = data.shape[0]
        bs = min(cfg.batch_size, n)
        steps_per_epoch = n // bs
        total = cfg.epochs * steps_per_epoch
        history = []
        with torch.random.fork_rng(devices=[dev] if dev.type == "cuda" else []):
            torch.manual_seed(seed)
            for m in (self.encoder, self.decoder):  # fresh init from the seed
                for layer in m.modules():
                    if isinstance(layer, nn.Linear):
                        layer.reset_parameters()
            with torch.no_grad():
                self.log_gamma.zero_()  # γ = 1 at the start, as Dai & Wipf's zeros_initializer
            opt = torch.optim.Adam(self.parameters(), lr=cfg.lr)
            sched = torch.optim.lr_scheduler.LambdaLR(
                opt, lambda t: 0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * min(t, total) / max(total, 1))))
            self.train()
            bar = tqdm(range(cfg.epochs), desc=desc, disable=not progress, leave=False, mininterval=1.0)
            for _ in bar:
                perm = torch.randperm(n, device=dev)
                sums = torch.zeros(3, device=dev)
                for i in range(steps_per_epoch):
                    terms = self.loss(data[perm[i * bs:(i + 1) * bs]])
                    opt.zero_grad(set_to_none=True)
                    terms["loss"].backward()
                    opt.step()
                    sched.step()
                    sums += torch.stack([terms["loss"].detach(), terms["rec"].detach(), terms["kl"].detach()])
                mean = (sums / steps_per_epoch).tolist()
                history.append({"loss": round(mean[0], 5), "rec": round(mean[1], 5), "kl": round(mean[2], 5),
                                "gamma": float(f"{self.gamma:.6g}")})
                bar.set_postfix(loss=f"{mean[0]:.3f}", kl=f"{mean[2]:.2f}", gamma=f"{self.gamma:.3g}")
        self.eval()
        self.fitted.fill_(1)
        return history

    def _fit_normalization(self, codes: torch.Tensor, how: str) -> None:
        d = self.latent_dim
        eye = torch.eye(d, dtype=torch.float64, device=codes.device)
        if how == "none":
            self.shift.zero_()
            w, w_inv = eye, eye
        elif how == "standardize":
            self.shift.copy_(codes.mean(0))
            std = codes.double().std(0)
            std = std.clamp_min(max(float(std.max()) * 1e-6, 1e-12))
            w, w_inv = torch.diag(1 / std), torch.diag(std)
        else:
            self.shift.copy_(codes.mean(0))
            lam, vecs = torch.linalg.eigh(torch.cov(codes.double().T).reshape(d, d))
            lam = lam.clamp_min(max(float(lam.max()) * 1e-6, 1e-24))
            w, w_inv = vecs * lam.rsqrt(), lam.sqrt()[:, None] * vecs.T
        self.norm_map.copy_(w)
        self.denorm_map.copy_(w_inv)

    def covariance_deficit(self) -> torch.Tensor:
        """γ denorm_mapᵀ denorm_map ``(d, d)``: how much less covariance the decoder-mean samples
        have than the fitted density (the decoder noise γ I, mapped back to code units)."""
        return self.log_gamma.detach().exp() * self.denorm_map.T @ self.denorm_map

    @torch.no_grad()
    def decode(self, u: torch.Tensor) -> torch.Tensor:
        """Decoder mean mapped back to code units: ``u (n, d)`` -> ``z (n, d)``."""
        return self.shift + self.decoder(u) @ self.denorm_map

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None, noise: bool = True) -> torch.Tensor:
        """``n`` codes ``(n, d)`` on the module's device: u ~ N(0, I) and ε ~ N(0, I) (drawn on
        the CPU from ``generator``, u first), z = μ_θ(u) + √γ ε mapped back to code units (the
        ``two-stage`` sampler); with ``noise=False`` the decoder mean μ_θ(u) alone, whose
        covariance is smaller by :meth:`covariance_deficit` (see the class docstring).

        Raises:
            RuntimeError: not fitted.
        """
        if not self.is_fitted:
            raise RuntimeError("the two-stage VAE has not been fitted")
        u = torch.randn(n, self.latent_dim, generator=generator).to(self.shift)
        z = self.decoder(u)
        if noise:
            z = z + self.log_gamma.exp().sqrt() * torch.randn(n, self.latent_dim, generator=generator).to(z)
        return self.shift + z @ self.denorm_map
