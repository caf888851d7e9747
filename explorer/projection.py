"""2-D projections of latent codes, sklearn style: ``Projection(method).fit(Z).transform(Z2)``.

Methods:

- ``pca``: scikit-learn PCA; linear, so any later point (a slider position, a drifted code)
  lands in the same axes exactly.
- ``umap``: umap-learn's UMAP, fitted on encoder means; other codes (prior samples) are placed
  with ``transform`` into the same embedding.
- ``identity``: the true latent plane, only for d = 2.

Plotting is kept out of this module.
"""
from __future__ import annotations

import numpy as np

METHODS = ("pca", "umap", "identity")


class Projection:
    """Fit a 2-D projection on ``(N, d)`` codes and map other ``(M, d)`` codes into it.

    Args:
        method: one of ``pca``, ``umap``, ``identity``.
        random_state: seed for UMAP (and PCA's solver).
        n_neighbors: UMAP neighbourhood size (default 15).

    Raises:
        ValueError: unknown method, identity with d != 2, too few points, or ``transform``
            with a different d than ``fit``.
    """

    def __init__(self, method: str = "pca", random_state: int = 0, n_neighbors: int = 15):
        if method not in METHODS:
            raise ValueError(f"unknown projection {method!r}; choose one of {list(METHODS)}")
        if n_neighbors < 2:
            raise ValueError(f"n_neighbors must be >= 2, got {n_neighbors}")
        self.method = method
        self.random_state = random_state
        self.n_neighbors = n_neighbors
        self.model_ = None
        self.dim_ = None

    @staticmethod
    def _as2d(z) -> np.ndarray:
        z = np.asarray(z.detach().cpu().numpy() if hasattr(z, "detach") else z, dtype=np.float32)
        if z.ndim != 2:
            raise ValueError(f"expected an (N, d) array of codes, got shape {z.shape}")
        return z

    def fit(self, z) -> "Projection":
        z = self._as2d(z)
        n, d = z.shape
        if self.method == "identity" and d != 2:
            raise ValueError(f"the identity projection needs d = 2, got d = {d}; use pca or umap")
        if n < 3:
            raise ValueError(f"need at least 3 codes to fit a projection, got {n}")
        self.dim_ = d
        if self.method == "pca":
            from sklearn.decomposition import PCA
            self.model_ = PCA(n_components=min(2, d), random_state=self.random_state).fit(z)
        elif self.method == "umap":
            import umap
            self.model_ = umap.UMAP(n_components=2, n_neighbors=min(self.n_neighbors, n - 1),
                                    random_state=self.random_state, n_jobs=1).fit(z)
        return self

    def transform(self, z) -> np.ndarray:
        """Map ``(M, d)`` codes to ``(M, 2)`` float32."""
        if self.dim_ is None:
            raise RuntimeError("Projection.transform called before fit")
        z = self._as2d(z)
        if z.shape[1] != self.dim_:
            raise ValueError(f"projection was fitted on d = {self.dim_}, got codes with d = {z.shape[1]}")
        if self.method == "identity":
            return z.copy()
        out = self.model_.transform(z).astype(np.float32)
        if out.shape[1] == 1:  # d = 1: pad so callers always get two columns
            out = np.concatenate([out, np.zeros_like(out)], axis=1)
        return out

    def fit_transform(self, z) -> np.ndarray:
        if self.method == "umap":
            z = self._as2d(z)
            self.fit(z)
            return self.model_.embedding_.astype(np.float32)
        return self.fit(z).transform(z)

    def linear_map(self) -> tuple[np.ndarray, np.ndarray]:
        """For ``pca``/``identity``: ``(mean (d,), components (2, d))`` with y = (z - mean) @ components.T.

        Raises:
            ValueError: the projection is not linear (UMAP).
        """
        if self.method == "identity":
            return np.zeros(2, np.float32), np.eye(2, dtype=np.float32)
        if self.method != "pca" or self.model_ is None:
            raise ValueError(f"projection {self.method!r} (fitted: {self.model_ is not None}) has no linear map")
        comps = self.model_.components_.astype(np.float32)
        if comps.shape[0] == 1:
            comps = np.concatenate([comps, np.zeros_like(comps)])
        return self.model_.mean_.astype(np.float32), comps
