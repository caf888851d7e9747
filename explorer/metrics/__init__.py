"""Metrics: latent-space coverage (``latent``), Fréchet distance (``frechet``), image feature
backbones (``backbones``) and the papers' FID protocol (``protocol``).

The latent-space functions are re-exported here (``from explorer.metrics import prdc``).
``backbones`` and ``protocol`` import torch models lazily; import them by module.
"""
from .frechet import feature_statistics, frechet_distance
from .latent import active_units, covered, median_bandwidth, mmd_rbf, prdc

__all__ = ["active_units", "covered", "feature_statistics", "frechet_distance", "median_bandwidth", "mmd_rbf", "prdc"]
