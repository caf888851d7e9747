"""Name -> trainer registry: which loop trains a family (``LatentModel.trainer``).

Each :class:`Trainer` bundles the full loop (``fit``, used by ``train.py``), the optimiser
set-up and the single step (used by ``bench/train_throughput.py``), and the default learning
rate of the family's paper.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from . import adversarial, training


@dataclass(frozen=True)
class Trainer:
    """fit(model, images, cfg, device=, resume_path=, log=, progress=) -> history;
    optimizers(model, lr) -> the optimiser state ``step`` takes; step(model, optimizers, x) -> terms."""

    fit: Callable
    optimizers: Callable
    step: Callable
    default_lr: float


TRAINERS: dict[str, Trainer] = {
    "elbo": Trainer(fit=training.train, optimizers=training.adam,
                    step=training.train_step, default_lr=1e-3),
    "adversarial": Trainer(fit=adversarial.train_adversarial, optimizers=adversarial.make_optimizers,
                           step=adversarial.adversarial_step, default_lr=2e-4),  # seed 004 App. D
}


def trainer_for(model_or_class) -> Trainer:
    """The :class:`Trainer` of a model (or model class). Raises ValueError for an unknown trainer name."""
    name = model_or_class.trainer
    if name not in TRAINERS:
        raise ValueError(f"unknown trainer {name!r}; registered: {sorted(TRAINERS)}")
    return TRAINERS[name]
