"""Latent samplers fitted on a trained model's codes (models and files; no datasets).

- :mod:`.gmm`: :class:`GaussianMixtureSampler` (``gmm-10`` inside each checkpoint, ``gmm-100``);
- :mod:`.two_stage`: Dai & Wipf's second-stage VAE (``two-stage``);
- :mod:`.expost`: the pair a sidecar holds (:class:`ExPostSamplers`) and :func:`fit_expost`;
- :mod:`.sidecar`: the ``<name>.expost.safetensors`` file: paths, read, write, attach.
"""
from __future__ import annotations

from .gmm import GaussianMixtureSampler

__all__ = ["GaussianMixtureSampler"]
