"""Latent Explorer library: data, models, losses, checkpoints, metrics and projections.

This package never imports streamlit. The main entry points:

- :func:`explorer.load` -- load a checkpoint into a model (eval mode, CPU);
- :func:`explorer.data.load_dataset` -- MNIST / Fashion-MNIST as in-memory tensors;
- :data:`explorer.models.MODELS` / :data:`explorer.models.ZOO` -- the registries.
"""
from .checkpoint import CheckpointError, load, load_checkpoint, read_metadata, save
from .data import DatasetNotAvailable, load_dataset
from .checkpoint import build_model
from .models import MODELS, ZOO

__all__ = ["load", "load_checkpoint", "read_metadata", "save", "CheckpointError", "load_dataset",
           "DatasetNotAvailable", "MODELS", "ZOO", "build_model"]
