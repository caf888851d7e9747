"""Ex-post latent samplers fitted on a trained model's training-set codes, stored in a sidecar file.

"Ex-post density estimation" (Ghosh et al. 2020, §4; AR-ELBO, seed 002 §4-5 and Tables 3-4) fits
a density to the codes of the training set after the model is trained and samples new codes
from it instead of from the prior N(0, I). Three such samplers exist in the explorer:

- ``gmm-10``: 10-component GMM, fitted by ``train.py`` and stored *inside* the checkpoint
  (:class:`explorer.samplers.GaussianMixtureSampler`, state-dict keys ``gmm.*``);
- ``gmm-100``: the same estimator with K = 100 full-covariance components (Table 3's GMM-100
  column), stored in the sidecar;
- ``two-stage``: the second-stage VAE of Dai & Wipf (2019), "Diagnosing and Enhancing VAE
  Models" (ICLR), §4: a VAE on the codes z with a latent u of the same size d and a learned
  decoder variance γ; new codes are z ~ N(μ_θ(u), γ I), u ~ N(0, I), as the authors'
  ``generate`` does (:class:`SecondStageVAE`), stored in the sidecar.

Both estimators are fitted on the encoder means ``model.encode(x)`` of the whole training
split (for LSR-GAN the base VAE's encoder; for LDC-VAE the mean of its implicit encoder), as
the GMM-10 of ``explorer.evaluate.fit_gmm`` is. (Dai & Wipf's code trains its second stage on
fresh draws z ~ q(z|x) each epoch instead; the means serve every model here, autoencoders
without a posterior variance included, and match what the GMMs see.)

Sidecar file
------------
``checkpoints/<dataset>/<name>.expost.safetensors`` beside ``<name>.safetensors``, so shipped
checkpoints (whose SHA-256 other files record) are never rewritten. Layout:

- tensors ``gmm-100.weights (K,)``, ``gmm-100.means (K, d)``, ``gmm-100.scale_tril_packed
  (K, d(d+1)/2)`` (the lower triangles of the Cholesky factors, row-major, as
  ``torch.tril_indices``), ``gmm-100.fitted ()``;
- tensors ``two-stage.<key>``: the :class:`SecondStageVAE` state dict;
- string metadata ``format`` (``latent-explorer-expost/1``) and ``meta`` (JSON): ``checkpoint``
  (file name), ``checkpoint_sha256``, ``family``, ``latent_dim``, ``dataset``, ``split``
  (``train``), ``n_codes``, ``codes`` (what was fitted on), ``seed``, ``command``, ``device``,
  ``wall_seconds`` (and per part), ``created_at``, ``versions``, ``gmm_100`` (K, converged,
  n_iter, lower bound), ``two_stage`` (hyperparameters, ``history`` of per-epoch losses, final
  γ), ``sampler_coverage`` (:func:`expost_coverage` of both samplers, what the app shows).

:func:`explorer.checkpoint.load` attaches a sidecar through :func:`attach_sidecar`: then
``model.samplers`` also lists ``gmm-100`` and ``two-stage``. A sidecar whose recorded SHA-256
differs from the checkpoint's (the model was retrained) or that cannot be read is *not* used:
a ``UserWarning`` names both files and the command to refit, and the model loads without the
two samplers. Loading a sidecar path as a model (``explorer.load("x.expost.safetensors")``,
e.g. from a ``checkpoints/mnist/*.safetensors`` glob) raises
:class:`explorer.checkpoint.CheckpointError` saying which model file to load instead; tools
that take globs skip sidecars with :func:`is_sidecar` (``python -m explorer.expost`` does).
Names ending in ``.expost`` are therefore reserved: a model may not be called ``x.expost``.

CLI::

    python -m explorer.expost checkpoints/mnist/*.safetensors [--seed 0] [--device auto]

fits both samplers for every model checkpoint given (sidecar paths are skipped) and writes its
sidecar atomically, printing progress and the time per model.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import platform
import shlex
import sys
import time
import warnings
from dataclasses import asdict, dataclass
from importlib import metadata as importlib_metadata
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save as st_save
from sklearn.exceptions import ConvergenceWarning
from torch import nn
from tqdm.auto import tqdm

from .configs import DictConfig
from .io import atomic_write_bytes, file_sha256
from .samplers import GaussianMixtureSampler

FORMAT = "latent-explorer-expost/1"
SUFFIX = ".expost.safetensors"
SAMPLERS = ("gmm-100", "two-stage")  # the sampler names a sidecar adds, in model.samplers order
GMM_COMPONENTS = 100


class SidecarError(RuntimeError):
    """A sidecar is unreadable, foreign, or does not fit its model; the message names the file."""


# ---- paths -----------------------------------------------------------------------------------
def is_sidecar(path: str | Path) -> bool:
    """True for ``*.expost.safetensors`` paths (ex-post sidecars, not model checkpoints)."""
    return Path(path).name.endswith(SUFFIX)


def sidecar_path(checkpoint: str | Path) -> Path:
    """``<dir>/<name>.safetensors`` -> ``<dir>/<name>.expost.safetensors``.

    Raises:
        ValueError: ``checkpoint`` is itself a sidecar or does not end in ``.safetensors``.
    """
    p = Path(checkpoint)
    if is_sidecar(p) or not p.name.endswith(".safetensors") or p.name == ".safetensors":
        raise ValueError(f"{p}: not a model checkpoint path (<name>.safetensors, name not ending in .expost)")
    return p.with_name(p.name[: -len(".safetensors")] + SUFFIX)


def model_path_of(sidecar: str | Path) -> Path:
    """``<dir>/<name>.expost.safetensors`` -> ``<dir>/<name>.safetensors``."""
    p = Path(sidecar)
    return p.with_name(p.name[: -len(SUFFIX)] + ".safetensors")


def refit_command(checkpoint: str | Path) -> str:
    return f"python -m explorer.expost {shlex.quote(str(checkpoint))}"


# ---- second-stage VAE (Dai & Wipf 2019, §4) --------------------------------------------------
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
    ``sample(noise=False)`` gives the decoder mean μ_θ(u) alone. That is not the default because
    it fails whenever the codes are close to Gaussian: the second stage then explains them with
    γ ≈ 1 and an almost constant μ_θ (posterior collapse, KL ≈ 0), and all decoder means land on
    the codes' mean (mnist vae-2d: k-NN coverage 0.05 of the test codes, against 0.9 with the
    noise). Where it does not collapse it is under-dispersed by :meth:`covariance_deficit` and
    scores higher on k-NN coverage (mnist vae 0.72 vs 0.66, ar-elbo-iso-i 0.89 vs 0.72) and
    lower on recall and MMD².

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


# ---- the pair of samplers a sidecar holds ----------------------------------------------------
class ExPostSamplers(nn.Module):
    """``gmm-100`` and ``two-stage`` for one model; what :func:`attach_sidecar` hangs on
    ``model.expost`` (not a registered submodule: it stays out of the model's state dict).

    ``meta`` is the sidecar's JSON metadata (see the module docstring).
    """

    def __init__(self, latent_dim: int, two_stage: TwoStageConfig | None = None,
                 n_components: int = GMM_COMPONENTS, meta: dict | None = None):
        super().__init__()
        cfg = two_stage or TwoStageConfig()
        self.gmm100 = GaussianMixtureSampler(latent_dim, n_components)
        self.two_stage = SecondStageVAE(latent_dim, cfg.hidden, cfg.depth)
        self.meta = dict(meta or {})

    @property
    def samplers(self) -> list[str]:
        return [name for name, part in zip(SAMPLERS, (self.gmm100, self.two_stage)) if part.is_fitted]

    def sample(self, n: int, sampler: str, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` codes ``(n, d)`` from ``gmm-100`` or ``two-stage``.

        Raises:
            ValueError: another name. RuntimeError: that part is not fitted.
        """
        if sampler == "gmm-100":
            return self.gmm100.sample(n, generator=generator)
        if sampler == "two-stage":
            return self.two_stage.sample(n, generator=generator)
        raise ValueError(f"ex-post samplers are {list(SAMPLERS)}, not {sampler!r}")

    # -- (de)serialisation --
    def tensors(self) -> dict[str, torch.Tensor]:
        """The sidecar's tensors (CPU, contiguous); GMM Cholesky factors packed to their lower triangles."""
        g = self.gmm100
        d = g.means.shape[1]
        rows, cols = torch.tril_indices(d, d)
        out = {"gmm-100.weights": g.weights, "gmm-100.means": g.means,
               "gmm-100.scale_tril_packed": g.scale_tril[:, rows, cols], "gmm-100.fitted": g.fitted}
        out.update({f"two-stage.{k}": v for k, v in self.two_stage.state_dict().items()})
        return {k: v.detach().cpu().contiguous().clone() for k, v in out.items()}

    def load_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        """Inverse of :meth:`tensors`. Raises ValueError on missing, extra or mis-shaped tensors."""
        g = self.gmm100
        k, d = g.means.shape
        expected = set(self.tensors())
        if set(tensors) != expected:
            raise ValueError(f"tensors {sorted(set(tensors) ^ expected)} missing or unexpected")
        packed = tensors["gmm-100.scale_tril_packed"]
        if tuple(packed.shape) != (k, d * (d + 1) // 2):
            raise ValueError(f"gmm-100.scale_tril_packed has shape {tuple(packed.shape)}, expected {(k, d * (d + 1) // 2)}")
        rows, cols = torch.tril_indices(d, d)
        tril = torch.zeros(k, d, d, dtype=packed.dtype)
        tril[:, rows, cols] = packed
        g.load_state_dict({"weights": tensors["gmm-100.weights"], "means": tensors["gmm-100.means"],
                           "scale_tril": tril, "fitted": tensors["gmm-100.fitted"]}, strict=True)
        self.two_stage.load_state_dict({key[len("two-stage."):]: v for key, v in tensors.items()
                                        if key.startswith("two-stage.")}, strict=True)


# ---- fitting -----------------------------------------------------------------------------------
@torch.no_grad()
def train_codes(model, dataset: str, limit: int | None = None, device: str | torch.device = "cpu") -> torch.Tensor:
    """Encoder means of the training split: ``(N, d)`` float32 on the CPU (N = 60k, or ``limit``)."""
    from .data import load_dataset
    from .evaluate import batched

    x, _ = load_dataset(dataset, "train", limit=limit)
    model.to(device).eval()
    return batched(model.encode, x, device=device)


def fit_expost(codes: torch.Tensor, seed: int = 0, device: str | torch.device = "cpu",
               two_stage: TwoStageConfig | None = None, n_components: int = GMM_COMPONENTS,
               progress: bool = True, desc: str = "two-stage") -> tuple[ExPostSamplers, dict]:
    """Fit ``gmm-100`` (scikit-learn, CPU) and ``two-stage`` (on ``device``) on codes ``(N, d)``.

    Returns:
        ``(samplers, info)``: the fitted :class:`ExPostSamplers` on the CPU, and the metadata
        parts ``gmm_100``, ``two_stage`` (config + history), ``gmm_seconds``, ``two_stage_seconds``.

    Raises:
        ValueError: codes are not ``(N, d)`` with N >= ``n_components``, or not finite.
    """
    cfg = two_stage or TwoStageConfig()
    d = codes.shape[1]
    ex = ExPostSamplers(d, cfg, n_components)
    t0 = time.time()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        ex.gmm100.fit(codes, seed=seed)
    t1 = time.time()
    ex.two_stage.to(device)
    history = ex.two_stage.fit(codes, cfg, seed=seed, progress=progress, desc=desc)
    ex.two_stage.cpu()
    t2 = time.time()
    info = {
        "gmm_100": {"n_components": n_components, "covariance_type": "full", "reg_covar": 1e-6,
                    **ex.gmm100.fit_info,
                    "warnings": [str(w.message) for w in caught if issubclass(w.category, ConvergenceWarning)]},
        "two_stage": {"config": asdict(cfg), "gamma": ex.two_stage.gamma, "history": history,
                      "source": "Dai & Wipf 2019, Diagnosing and Enhancing VAE Models, §4 (two-stage VAE)"},
        "gmm_seconds": round(t1 - t0, 2), "two_stage_seconds": round(t2 - t1, 2),
    }
    return ex, info


# ---- sidecar I/O -------------------------------------------------------------------------------
def save_sidecar(ex: ExPostSamplers, checkpoint: str | Path, meta: dict) -> Path:
    """Write ``ex`` and JSON-able ``meta`` to the sidecar of ``checkpoint`` atomically.

    ``meta`` must hold ``checkpoint_sha256``; it is stored as ``ex.meta`` too.

    Raises:
        ValueError: no ``checkpoint_sha256`` in ``meta``. TypeError: ``meta`` is not JSON-able.
    """
    if not meta.get("checkpoint_sha256"):
        raise ValueError("sidecar meta needs the checkpoint_sha256 of the model it was fitted on")
    path = sidecar_path(checkpoint)
    atomic_write_bytes(path, st_save(ex.tensors(), metadata={"format": FORMAT, "meta": json.dumps(meta)}))
    ex.meta = dict(meta)
    return path


def read_sidecar_meta(path: str | Path) -> dict:
    """The JSON metadata of a sidecar file, without its tensors.

    Raises:
        SidecarError: missing, unreadable or foreign file, or damaged metadata.
    """
    path = Path(path)
    try:
        with safe_open(str(path), framework="pt") as f:
            md = f.metadata() or {}
    except Exception as e:  # SafetensorError / OSError variants
        raise SidecarError(f"{path}: not a readable safetensors file (corrupt or truncated?): {e}") from e
    if md.get("format") != FORMAT:
        raise SidecarError(f"{path}: not an ex-post sidecar (format {md.get('format')!r}, expected {FORMAT!r})")
    try:
        return json.loads(md["meta"])
    except (KeyError, json.JSONDecodeError) as e:
        raise SidecarError(f"{path}: damaged metadata ({e})") from e


def load_sidecar(path: str | Path, latent_dim: int) -> ExPostSamplers:
    """Read a sidecar into :class:`ExPostSamplers` (CPU, eval mode), without any hash check.

    Raises:
        SidecarError: unreadable, foreign or truncated file, or tensors that do not fit ``latent_dim``.
    """
    path = Path(path)
    meta = read_sidecar_meta(path)
    try:
        with safe_open(str(path), framework="pt") as f:
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as e:
        raise SidecarError(f"{path}: tensor data is corrupt or truncated: {e}") from e
    try:
        cfg = TwoStageConfig.from_dict(meta.get("two_stage", {}).get("config", {}))
        k = int(meta.get("gmm_100", {}).get("n_components", GMM_COMPONENTS))
        ex = ExPostSamplers(latent_dim, cfg, k, meta=meta)
        ex.load_tensors(tensors)
    except (ValueError, TypeError, RuntimeError) as e:
        raise SidecarError(f"{path}: does not fit a d = {latent_dim} model: {str(e).splitlines()[0]}") from e
    return ex.eval()


def attach_sidecar(model, checkpoint: str | Path) -> bool:
    """Attach the sidecar of ``checkpoint`` (if there is one) to ``model`` as ``model.expost``.

    Returns True when attached. A sidecar fitted on another version of the checkpoint (recorded
    SHA-256 differs) or an unreadable one is left out with a ``UserWarning`` naming both files
    and the refit command; the model itself is unaffected.
    """

    checkpoint = Path(checkpoint)
    path = sidecar_path(checkpoint)
    if not path.is_file():
        return False
    fix = f"refit with `{refit_command(checkpoint)}`"
    try:
        meta = read_sidecar_meta(path)
        digest = file_sha256(checkpoint)
        recorded = str(meta.get("checkpoint_sha256", ""))
        if recorded != digest:
            warnings.warn(f"{path} was fitted on another version of {checkpoint} (SHA-256 {recorded[:12] or '?'}... "
                          f"recorded, {digest[:12]}... now: the model was retrained or replaced); its samplers "
                          f"{', '.join(SAMPLERS)} are left out; {fix}", UserWarning, stacklevel=3)
            return False
        ex = load_sidecar(path, model.latent_dim)
    except (SidecarError, OSError) as e:
        warnings.warn(f"{path}: unusable ex-post sidecar of {checkpoint} ({e}); its samplers {', '.join(SAMPLERS)} "
                      f"are left out; {fix}", UserWarning, stacklevel=3)
        return False
    model.attach_expost(ex)
    return True


@torch.no_grad()
def expost_coverage(model, ex: ExPostSamplers, dataset: str, seed: int = 0,
                    device: str | torch.device = "cpu") -> dict[str, dict]:
    """:func:`explorer.evaluate.coverage_metrics` of ``N_APP`` codes of each ex-post sampler
    (fresh generator seeded ``seed`` per sampler, as :func:`explorer.evaluate.sampler_coverage`)
    against the encoder means of the first ``N_APP`` test images: ``{sampler: {precision, recall,
    density, coverage, mmd}}``."""
    from .data import load_dataset
    from .evaluate import N_APP, batched, coverage_metrics

    x, _ = load_dataset(dataset, "test", limit=N_APP)
    test_mu = batched(model.to(device).eval().encode, x, device=device)
    return {s: coverage_metrics(test_mu, ex.sample(N_APP, s, generator=torch.Generator().manual_seed(seed)).cpu())
            for s in ex.samplers}


@torch.no_grad()
def expost_modes(model, ex: ExPostSamplers, dataset: str, seed: int = 0,
                 device: str | torch.device = "cpu") -> dict[str, dict]:
    """:func:`explorer.evaluate.sampler_modes` (class histogram, class entropy, memorisation) of
    ``N_APP`` decoded codes of each ex-post sampler; ``{}`` without the dataset's classifier."""
    from .evaluate import N_APP, sampler_modes

    before = model.expost
    model.attach_expost(ex)
    try:
        return sampler_modes(model, dataset, n=N_APP, seed=seed, device=device, samplers=ex.samplers)
    finally:
        model.attach_expost(before)


# ---- CLI -----------------------------------------------------------------------------------------
def _versions() -> dict:
    out = {"python": platform.python_version()}
    for pkg in ("torch", "scikit-learn", "safetensors", "numpy"):
        try:
            out[pkg] = importlib_metadata.version(pkg)
        except importlib_metadata.PackageNotFoundError:
            out[pkg] = None
    return out


def fit_checkpoint(path: str | Path, seed: int = 0, device: str | torch.device = "cpu", limit: int | None = None,
                   two_stage: TwoStageConfig | None = None, command: str = "", progress: bool = True,
                   log=print) -> Path:
    """Fit both ex-post samplers for the model checkpoint at ``path`` and write its sidecar.

    Raises:
        explorer.checkpoint.CheckpointError: the model cannot be loaded, or its file changed
            while fitting (nothing is written then).
    """
    from .checkpoint import CheckpointError, load_checkpoint
    from .training import resolve_device

    path = Path(path)
    dev = resolve_device(device) if isinstance(device, str) else device
    t0 = time.time()
    digest = file_sha256(path) if path.is_file() else ""
    ckpt = load_checkpoint(path, expost=False)
    model, meta = ckpt.model, ckpt.meta
    dataset = meta.get("dataset")
    if not dataset:
        raise CheckpointError(f"{path}: its metadata names no dataset; cannot find its training codes")
    name = meta.get("name", path.name[: -len(".safetensors")])
    codes = train_codes(model, dataset, limit=limit, device=dev)
    t_enc = time.time() - t0
    log(f"[{name}] {len(codes)} training codes (d = {codes.shape[1]}) of {dataset} encoded in {t_enc:.1f} s; "
        f"fitting gmm-100 and two-stage on {dev}")
    ex, info = fit_expost(codes, seed=seed, device=dev, two_stage=two_stage, progress=progress, desc=f"[{name}] two-stage")
    coverage = expost_coverage(model, ex, dataset, seed=seed, device=dev)
    modes = expost_modes(model, ex, dataset, seed=seed, device=dev)
    if file_sha256(path) != digest:
        raise CheckpointError(f"{path}: the file changed while its ex-post samplers were fitted; nothing written, "
                              f"rerun `{refit_command(path)}`")
    wall = time.time() - t0
    sidecar_meta = {
        "checkpoint": path.name, "checkpoint_sha256": digest, "family": model.family, "name": name,
        "latent_dim": model.latent_dim, "dataset": dataset, "split": "train", "n_codes": len(codes),
        "codes": "encoder means model.encode(x) of the training split", "seed": seed,
        "command": command or refit_command(path), "device": str(dev),
        "threads": torch.get_num_threads(), "created_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "encode_seconds": round(t_enc, 2), "wall_seconds": round(wall, 2), "versions": _versions(), **info,
        "sampler_coverage": coverage, "sampler_modes": modes,
    }
    out = save_sidecar(ex, path, sidecar_meta)
    for sampler, c in coverage.items():
        log(f"[{name}] {sampler}: coverage {c['coverage']:.3f}, density {c['density']:.3f}, precision "
            f"{c['precision']:.3f}, recall {c['recall']:.3f}, MMD² {c['mmd']:.4f} (against test encoder means)")
    h = info["two_stage"]["history"][-1]
    log(f"[{name}] wrote {out} ({out.stat().st_size / 1e3:.0f} kB) in {wall:.1f} s (encode {t_enc:.1f} s, gmm-100 "
        f"{info['gmm_seconds']:.1f} s, {info['gmm_100']['n_iter']} EM iterations, converged "
        f"{info['gmm_100']['converged']}; two-stage {info['two_stage_seconds']:.1f} s, final loss {h['loss']:.3f} "
        f"nats, KL {h['kl']:.2f}, gamma {h['gamma']:.3g})")
    return out


def main(argv: list[str] | None = None) -> int:
    from .checkpoint import CheckpointError

    p = argparse.ArgumentParser(prog="python -m explorer.expost",
                                description="Fit the ex-post samplers gmm-100 and two-stage of model checkpoints "
                                            "and write <name>.expost.safetensors beside each.")
    p.add_argument("paths", nargs="+", type=Path, help="model checkpoints (.safetensors); sidecars are skipped")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", help="auto, cpu or cuda (for encoding and the two-stage VAE)")
    p.add_argument("--limit", type=int, default=None, help="use only the first N training images (for tests)")
    p.add_argument("--epochs", type=int, default=None, help=f"two-stage epochs (default {TwoStageConfig.epochs})")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    args = p.parse_args(argv)
    command = "python -m explorer.expost " + " ".join(shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv))
    cfg = TwoStageConfig(**({"epochs": args.epochs} if args.epochs else {}))
    paths = [q for q in args.paths if not is_sidecar(q)]
    for q in args.paths:
        if is_sidecar(q):
            print(f"skipping {q}: an ex-post sidecar, not a model checkpoint", flush=True)
    rc, t0 = 0, time.time()
    for i, path in enumerate(paths, 1):
        print(f"({i}/{len(paths)}) {path}", flush=True)
        try:
            fit_checkpoint(path, seed=args.seed, device=args.device, limit=args.limit, two_stage=cfg,
                           command=command, progress=not args.quiet, log=lambda s: print(s, flush=True))
        except (CheckpointError, ValueError) as e:
            print(f"error: {e}", file=sys.stderr, flush=True)
            rc = 1
    print(f"done: {len(paths)} checkpoint(s) in {time.time() - t0:.1f} s", flush=True)
    return rc


if __name__ == "__main__":
    raise SystemExit(main())
