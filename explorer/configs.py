"""Plain-dict round trips for the dataclass configs that checkpoints store as JSON."""
from __future__ import annotations

from dataclasses import asdict, fields


class DictConfig:
    """Mixin for dataclass configs: ``to_dict`` (tuples become lists, for JSON) and ``from_dict``.

    ``from_dict`` raises ValueError naming unknown keys and the allowed ones; the dataclass's own
    ``__post_init__`` validates the values.
    """

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict):
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"{cls.__name__} has no fields {unknown}; allowed: {sorted(names)}")
        return cls(**d)
