"""Model families (one file each) and the name -> class registry.

``MODELS`` maps a family name to its class (the class carries its dataclass config as
``config_class``); ``ZOO`` maps each shipped checkpoint name to the family and config
overrides that produce it. Both feed ``train.py``'s argparse ``choices=``.
"""
from __future__ import annotations

from .ae import AE, AEConfig
from .ar_elbo import ARELBO, ARELBOConfig
from .base import LatentModel, ModelConfig
from .consistency import ConsistencyVAE, ConsistencyVAEConfig
from .ldc_vae import LDCVAE, LDCVAEConfig
from .lsr_gan import LSRGAN, LSRGANConfig
from .rae import RAE, RAEConfig
from .vae import VAE, VAEConfig
from .wae import WAE, WAEConfig

MODELS: dict[str, type[LatentModel]] = {cls.family: cls for cls in (VAE, ARELBO, ConsistencyVAE, LDCVAE, LSRGAN)}
MODELS.update({cls.family: cls for cls in (AE, RAE, WAE)})  # deterministic-encoder baselines

ZOO: dict[str, tuple[str, dict]] = {
    "vae": ("vae", {}),
    "beta-vae": ("vae", {"beta": 4.0, "likelihood": "bernoulli"}),  # Higgins et al. 2017's likelihood (vae.py)
    "ar-elbo-iso-i": ("ar-elbo", {"variance": "iso-i"}),
    "ar-elbo-iso-d": ("ar-elbo", {"variance": "iso-d"}),
    "ar-elbo-diag-i": ("ar-elbo", {"variance": "diag-i"}),
    "ar-elbo-diag-d": ("ar-elbo", {"variance": "diag-d"}),
    "consistency-vae": ("consistency-vae", {"alpha": 1.0}),
    "vae-2d": ("vae", {"latent_dim": 2, "likelihood": "bernoulli"}),  # Kingma & Welling 2014's 2-D manifold
    "ldc-vae": ("ldc-vae", {}),
    # Trained against the frozen ar-elbo-iso-i above (its default base; seed 004 App. A). The λ sweep
    # of 004 App. C.2 and the control: λ = 5e-4 (the default, reading 7 of explorer.models.lsr_gan), 4x it
    # (reading 8: a literal λ = 1 draws speckle against this base), and 0.
    "lsr-gan": ("lsr-gan", {"lam": 5e-4}),
    "lsr-gan-lambda0.002": ("lsr-gan", {"lam": 2e-3}),
    "lsr-gan-lambda0": ("lsr-gan", {"lam": 0.0}),
    # Deterministic-encoder baselines (hyperparameters and sources in their modules).
    "ae": ("ae", {}),
    "rae-l2": ("rae", {"regularizer": "l2"}),
    "rae-gp": ("rae", {"regularizer": "gp"}),
    "wae-mmd": ("wae-mmd", {}),
}


def model_class(family: str) -> type[LatentModel]:
    """The class registered under ``family``. Raises ValueError naming the allowed families."""
    if family not in MODELS:
        raise ValueError(f"unknown model family {family!r}; choose one of {sorted(MODELS)}")
    return MODELS[family]


def build_model(family: str, path=None, load=None, **config) -> LatentModel:
    """Construct a fresh model: ``build_model("ar-elbo", variance="iso-d", latent_dim=16)``.

    ``path`` (the checkpoint it will be saved as) and ``load`` (a checkpoint loader) matter only
    to families built on another checkpoint (LSR-GAN); :func:`explorer.checkpoint.build_model`
    passes the loader.

    Raises:
        ValueError: unknown family or config field, or an invalid config value.
    """
    cls = model_class(family)
    return cls.from_config(cls.config_class.from_dict(config), path, load=load)


__all__ = ["MODELS", "ZOO", "LatentModel", "ModelConfig", "VAE", "VAEConfig", "ARELBO", "ARELBOConfig",
           "ConsistencyVAE", "ConsistencyVAEConfig", "LDCVAE", "LDCVAEConfig", "LSRGAN", "LSRGANConfig",
           "build_model", "model_class",
           "AE", "AEConfig", "RAE", "RAEConfig", "WAE", "WAEConfig"]
