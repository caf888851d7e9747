"""The pair of ex-post samplers a sidecar holds, ``gmm-100`` and ``two-stage``, and their fit
on a model's training codes (Ghosh et al. 2020, §4; AR-ELBO, seed 002 §4-5 and Tables 3-4).

``gmm-10`` lives inside each checkpoint (:class:`GaussianMixtureSampler`, state-dict keys
``gmm.*``); these two are fitted after training and stored beside it
(:mod:`explorer.samplers.sidecar`). No files or datasets here: :func:`fit_expost` takes codes.
"""
from __future__ import annotations

import time
import warnings
from dataclasses import asdict

import torch
from torch import nn

from .gmm import GaussianMixtureSampler
from .two_stage import SecondStageVAE, TwoStageConfig

SAMPLERS = ("gmm-100", "two-stage")  # the sampler names a sidecar adds, in model.samplers order
GMM_COMPONENTS = 100


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
    from sklearn.exceptions import ConvergenceWarning  # heavy optional dependency: only when fitting

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
