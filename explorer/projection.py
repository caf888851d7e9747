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


def place_by_neighbours(fit_codes, fit_xy, codes, k: int = 15) -> np.ndarray:
    """Place new codes in a stored 2-D embedding without its fitted model: each of ``codes (M, d)``
    goes to the weighted mean of the positions ``fit_xy (N, 2)`` of its ``k`` nearest
    ``fit_codes (N, d)`` (Euclidean), weights exp(-(δ_j - δ_1) / σ), σ = mean_j (δ_j - δ_1).

    This is the initialisation UMAP's own ``transform`` starts from (umap-learn places a new
    point at the membership-weighted mean of its neighbours' embeddings, then runs a few
    optimisation epochs), used where only the embedding was stored, as for the checkpoints'
    ``umap_test``. Against umap-learn's ``transform`` of the stored GMM-10 codes of the mnist
    vae, ar-elbo-iso-i and ldc-vae it lands within 1-2 % of the embedding's span (median; 90th
    percentile 5-10 %); for off-manifold codes (prior samples) within 5-7 % (median).

    Returns:
        ``(M, 2)`` float32 (as many columns as ``fit_xy``).

    Raises:
        ValueError: shapes that do not match, or ``k`` < 1.
    """
    fit_codes, codes = Projection._as2d(fit_codes), Projection._as2d(codes)
    fit_xy = np.asarray(fit_xy, dtype=np.float32)
    if k < 1 or fit_codes.shape[0] != fit_xy.shape[0] or fit_codes.shape[1] != codes.shape[1]:
        raise ValueError(f"place_by_neighbours: fit codes {fit_codes.shape}, positions {fit_xy.shape}, "
                         f"codes {codes.shape}, k {k}")
    k = min(k, fit_codes.shape[0])
    out = np.empty((codes.shape[0], fit_xy.shape[1]), np.float32)
    sq_fit = (fit_codes.astype(np.float64) ** 2).sum(1)
    for i in range(0, len(codes), 1024):  # (chunk, N) distance blocks
        c = codes[i:i + 1024].astype(np.float64)
        dist = np.sqrt(np.maximum((c ** 2).sum(1)[:, None] - 2 * c @ fit_codes.T.astype(np.float64) + sq_fit, 0))
        idx = np.argpartition(dist, k - 1, axis=1)[:, :k]
        dk = np.take_along_axis(dist, idx, axis=1)
        rel = dk - dk.min(1, keepdims=True)
        w = np.exp(-rel / (rel.mean(1, keepdims=True) + 1e-12))
        w /= w.sum(1, keepdims=True)
        out[i:i + 1024] = (w[..., None] * fit_xy[idx]).sum(1)
    return out


def to_plane(arrays: dict, codes, projection: str) -> np.ndarray:
    """Place new codes ``(M, d)`` in one of a checkpoint's stored 2-D maps of its encoder means.

    ``arrays`` is a model's ``arrays`` (``explorer.evaluate.app_arrays``): ``test_mu (N, d)`` and
    ``<projection>_test (N, 2)``; for ``pca`` also ``pca_mean (d,)`` and ``pca_components (2, d)``.

    - ``pca``: exact, ``(codes - pca_mean) @ pca_components.T``;
    - ``umap``: :func:`place_by_neighbours` (the fitted UMAP is not stored);
    - ``identity`` (d = 2): the codes themselves.

    Returns:
        ``(M, 2)`` float32.

    Raises:
        ValueError: an unknown projection, one this checkpoint has no map for, or codes whose
            width is not the model's latent size d.
    """
    codes = Projection._as2d(codes)
    d = int(arrays["test_mu"].shape[1])
    if codes.shape[1] != d:
        raise ValueError(f"to_plane: codes have {codes.shape[1]} dimensions; the model's latent size is d = {d}")
    if f"{projection}_test" not in arrays:
        have = sorted(k[:-5] for k in arrays if k.endswith("_test"))
        raise ValueError(f"to_plane: no {projection!r} map stored for this model; stored: {', '.join(have)}")
    if projection == "pca":
        mean, comps = (np.asarray(arrays[k], dtype=np.float32) for k in ("pca_mean", "pca_components"))
        return ((codes - mean) @ comps.T).astype(np.float32)
    if projection == "identity":
        return codes[:, :2].astype(np.float32)
    if projection == "umap":
        return place_by_neighbours(np.asarray(arrays["test_mu"]), np.asarray(arrays["umap_test"]), codes)
    raise ValueError(f"to_plane: unknown projection {projection!r}; allowed: pca, umap, identity")
