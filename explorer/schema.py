"""What a checkpoint's header, and a results table, may hold, checked before anything is built from them.

A checkpoint's string metadata (``family``, ``config`` and ``meta``, JSON) comes from whoever
wrote the file. :func:`validate_header` checks the parsed header against :data:`HEADER_SCHEMA`
(JSON Schema, draft 2020-12, validated by the ``jsonschema`` library) and a nesting-depth bound,
so that a header the app cannot use is refused with one line naming the field, instead of
failing later inside a page: ``config`` that is not an object, ``meta`` as a list, ``metrics``
or ``coverage`` as a string, a latent size that would allocate gigabytes, JSON nested a
thousand levels deep.

The schema types every field the app and the loaders read and leaves other fields free (a
checkpoint may carry more provenance than this version shows). Family-specific config fields
are checked again, with their meaning, by each family's config dataclass.

A results table (``results/<dataset>-<backbone>.json``, written by ``explorer.evaluate``) is
checked the same way by :func:`table_problem` against :data:`TABLE_SCHEMA` before the Leaderboard
or Imaginings read it: a file edited by hand or cut short is named and skipped, not a crashed page.

No other project imports (io level).
"""
from __future__ import annotations

from typing import Any

from jsonschema import Draft202012Validator

MAX_DEPTH = 12  # nesting of JSON objects and lists in config and meta (the shipped files use 5)
MAX_LATENT_DIM = 1024
MAX_SIDE = 512  # image height and width in pixels
MAX_HISTORY = 10_000  # epochs recorded in meta.history

_NUMBER = {"type": ["number", "null"]}
_NUMBERS = {"type": "object", "additionalProperties": {"type": ["number", "string", "boolean", "null"]}}
_PER_SAMPLER = {"type": "object", "additionalProperties": {"type": "object"}}

HEADER_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "required": ["family", "config", "meta"],
    "properties": {
        "family": {"type": "string"},  # the allowed names are added by validate_header
        "config": {
            "type": "object",
            "required": ["latent_dim"],
            "properties": {
                "latent_dim": {"type": "integer", "minimum": 1, "maximum": MAX_LATENT_DIM},
                "image_shape": {"type": "array", "minItems": 3, "maxItems": 3,
                                "prefixItems": [{"enum": [1, 3]},
                                                {"type": "integer", "minimum": 1, "maximum": MAX_SIDE},
                                                {"type": "integer", "minimum": 1, "maximum": MAX_SIDE}]},
                "profile": {"type": "string", "maxLength": 64},
                "base_path": {"type": "string", "minLength": 1, "maxLength": 4096},
                "base_sha256": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
            },
        },
        "meta": {
            "type": "object",
            "properties": {
                "name": {"type": "string", "maxLength": 256},
                "dataset": {"type": "string", "maxLength": 256},
                "family": {"type": "string", "maxLength": 256},
                "device": {"type": "string", "maxLength": 256},
                "stop_reason": {"type": "string", "maxLength": 4096},
                "train": {"type": "object"},
                "versions": {"type": "object"},
                "history": {"type": "array", "maxItems": MAX_HISTORY, "items": _NUMBERS},
                "metrics": {
                    "type": "object",
                    "properties": {
                        **{k: _NUMBER for k in ("test_mse", "kl", "drift_kl", "drift_sq", "sigma2", "sharpness",
                                                "base_sharpness", "data_sharpness", "sharpness_ratio", "recon_mse",
                                                "base_recon_mse", "latent_recovery", "latent_recovery_all",
                                                "imagination_variance", "base_imagination_variance")},
                        "active_units": {"type": ["integer", "null"], "minimum": 0},
                        "coverage": _NUMBERS,
                        "sampler_coverage": _PER_SAMPLER,
                        "sampler_modes": _PER_SAMPLER,
                    },
                },
            },
        },
    },
}


def json_depth(value: Any) -> int:
    """Nesting depth of a parsed JSON value (a scalar is 0, ``[]`` and ``{}`` are 1), without
    recursion, so a hostile value cannot exhaust the stack."""
    depth, stack = 0, [(value, 0)]
    while stack:
        v, d = stack.pop()
        if isinstance(v, dict):
            stack.extend((x, d + 1) for x in v.values())
            depth = max(depth, d + 1)
        elif isinstance(v, list):
            stack.extend((x, d + 1) for x in v)
            depth = max(depth, d + 1)
    return depth


def header_problem(header: dict[str, Any], families: tuple[str, ...] | None = None) -> str | None:
    """Why a parsed header ``{"family", "config", "meta"}`` cannot be used, in one line, or None.

    Args:
        header: the parsed string metadata of a checkpoint.
        families: the allowed ``family`` names (``explorer.models.MODELS``); None allows any string.
    """
    for key in ("config", "meta"):
        if (depth := json_depth(header.get(key))) > MAX_DEPTH:
            return f"{key} is nested {depth} levels deep; at most {MAX_DEPTH} are allowed"
    schema = HEADER_SCHEMA
    if families is not None:
        schema = {**schema, "properties": {**schema["properties"], "family": {"enum": sorted(families)}}}
    error = _first_error(Draft202012Validator(schema), header)
    if error is None:
        return None
    if error.validator == "enum" and list(error.absolute_path) == ["family"]:
        return f"unknown model family {str(error.instance)[:80]!r}; allowed: {', '.join(sorted(families or ()))}"
    return _describe(error, "the header")


def _first_error(validator: Draft202012Validator, value: Any):
    """The schema violation nearest the top of ``value`` (errors sorted by path), or None."""
    return next(iter(sorted(validator.iter_errors(value), key=lambda e: list(e.path))), None)


def _describe(error, whole: str) -> str:
    """One line: where the violation is (dotted path, or ``whole``) and the validator's message."""
    return f"{'.'.join(map(str, error.absolute_path)) or whole}: {error.message[:200]}"


MAX_TABLE_ROWS = 100_000  # rows of one results table (a full zoo has ~250)
_TEXT = {"type": "string", "maxLength": 4096}
_METRIC_FIELDS = ("fd", "precision", "recall", "density", "coverage", "class_entropy", "min_class_share",
                  "nn_median", "seconds")

TABLE_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "required": ["dataset", "backbone", "label", "n", "reference", "prdc_k", "prdc_n", "device", "created", "rows"],
    "properties": {
        "dataset": {"type": "string", "maxLength": 256},
        "backbone": {"type": "string", "maxLength": 256},
        "label": _TEXT, "reference": _TEXT, "device": _TEXT, "created": _TEXT, "command": _TEXT,
        "n": {"type": "integer", "minimum": 1},
        "n_ref": {"type": ["integer", "null"], "minimum": 1},
        "prdc_k": {"type": "integer", "minimum": 1},
        "prdc_n": {"type": "integer", "minimum": 1},
        "nn_median_test": _NUMBER,
        "nn_n": {"type": ["integer", "null"], "minimum": 1},
        "backbone_info": {"type": "object"},
        "checkpoints": {"type": "object", "additionalProperties": {"type": "string", "pattern": "^[0-9a-f]{64}$"}},
        "updates": {"type": "array"},
        "rows": {
            "type": "array", "maxItems": MAX_TABLE_ROWS,
            "items": {
                "type": "object",
                "required": ["model", "protocol", "variant"],
                "properties": {
                    "model": {"type": "string", "minLength": 1, "maxLength": 256},
                    "protocol": {"type": "string", "minLength": 1, "maxLength": 64},
                    "variant": {"type": "string", "minLength": 1, "maxLength": 256},
                    **{k: _NUMBER for k in _METRIC_FIELDS},
                    "class_hist": {"type": "array", "maxItems": 1000, "items": {"type": "number"}},
                    "classes_above_1pct": {"type": ["integer", "null"], "minimum": 0},
                    "n": {"type": "integer", "minimum": 1},
                },
            },
        },
    },
}
_TABLE_VALIDATOR = Draft202012Validator(TABLE_SCHEMA)


def table_problem(table: Any) -> str | None:
    """Why a parsed results table (``results/<dataset>-<backbone>.json``, written by
    ``explorer.evaluate``) cannot be shown, in one line, or None: not an object, a header field the
    Leaderboard reads missing or mistyped (checked against :data:`TABLE_SCHEMA`), a metric that is
    not a number, nesting deeper than :data:`MAX_DEPTH`, or two rows for one (model, protocol,
    variant), which no table can show as one cell."""
    if (depth := json_depth(table)) > MAX_DEPTH:
        return f"nested {depth} levels deep; at most {MAX_DEPTH} are allowed"
    error = _first_error(_TABLE_VALIDATOR, table)
    if error is not None:
        return _describe(error, "the table")
    seen = set()
    for i, row in enumerate(table["rows"]):
        key = (row["model"], row["protocol"], row["variant"])
        if key in seen:
            return f"rows.{i}: a second row for model {key[0][:80]!r}, {key[1][:40]}/{key[2][:80]}"
        seen.add(key)
    return None
