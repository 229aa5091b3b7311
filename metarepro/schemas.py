"""JSON Schemas of the result files, checked with :mod:`jsonschema` wherever a file is read.

A file that does not match is refused with its path, the cell and the field at fault (``SchemaError``), instead of a
bare ``KeyError: 'mean'`` from deep inside a comparison.
"""

from __future__ import annotations

import hashlib
import json
from functools import cache
from pathlib import Path

from metarepro.evaluate import SCORE_UNITS

_NUMBER = {"type": "number"}
_TEXT = {"type": "string", "minLength": 1}

PUBLISHED = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "results/published/<benchmark>.json: a paper's numbers as printed",
    "type": "object",
    "required": ["benchmark", "source", "metric", "links", "cells"],
    "properties": {
        "benchmark": _TEXT, "paper": {"type": "string"}, "source": {"type": "string"}, "metric": _TEXT,
        "interval_kind": {"enum": ["ci95", "se", "sd3", "sd-query", "none"]},
        "links": {"type": "object", "required": ["arxiv", "code"],
                  "properties": {"arxiv": {"type": "string", "pattern": "^https://arxiv.org/abs/"}, "code": {"type": ["string", "null"]}}},
        "cells": {"type": "array", "items": {
            "type": "object",
            "required": ["row", "column", "mean", "interval", "printed"],
            "properties": {"row": _TEXT, "column": _TEXT, "mean": _NUMBER, "interval": {"type": ["number", "null"], "minimum": 0},
                           "interval_kind": {"enum": ["ci95", "se", "sd3", "sd-query", "none"]}, "printed": _TEXT, "source": {"type": "string"},
                           "cited": {"type": "boolean"}, "bold": {"type": "boolean"}, "rounding": {"type": "number", "minimum": 0}},
        }},
    },
}

_SEGMENT = {
    "type": "object",
    "oneOf": [
        {"required": ["unknown", "iterations"], "properties": {"unknown": {"const": True}}},
        {"required": ["commit", "dirty", "iterations", "threads", "host", "device", "wall_time_s", "protocol_versions"],
         "properties": {"unknown": False, "iterations": {"type": "array", "items": {"type": "integer", "minimum": 0},
                                                        "minItems": 2, "maxItems": 2},
                        "threads": {"type": "integer", "minimum": 1}, "wall_time_s": {"type": "number", "minimum": 0},
                        "cpu_time_s": {"type": "number", "minimum": 0},
                        "protocol_versions": {"type": "object", "additionalProperties": {"type": "integer", "minimum": 1}}}},
    ],
}

RECORD = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "results/reproduced/<benchmark>/<scale>/<cell>.json: one reproduced cell, written by runs only",
    "type": "object",
    "required": ["benchmark", "row", "column", "variant", "scale", "metric", "mean", "ci95", "n_episodes", "scores", "config",
                 "config_hash", "deviations", "provenance"],
    "properties": {
        "benchmark": _TEXT, "row": _TEXT, "column": _TEXT, "variant": _TEXT, "seed": {"type": "integer", "minimum": 0},
        "scale": {"enum": ["smoke", "quick", "paper"]}, "metric": _TEXT, "mean": _NUMBER, "ci95": {"type": "number", "minimum": 0},
        "n_episodes": {"type": "integer", "minimum": 1}, "scores": {"type": "array", "items": _NUMBER, "minItems": 1},
        "score_unit": {"enum": list(SCORE_UNITS)}, "config": {"type": "object"}, "config_hash": _TEXT,
        "deviations": {"type": "array", "items": {"type": "string"}},
        "provenance": {"type": "object", "properties": {"commit": {"type": ["string", "null"]}}},
        # what trained the model(s) behind the number: recorded segments, or for records made before segments existed
        # the commits their training may span (never reconstructed segments)
        "trainings": {"oneOf": [
            {"type": "array", "items": {"type": "object", "required": ["checkpoint", "segments"],
                                        "properties": {"segments": {"type": "array", "items": _SEGMENT},
                                                       # a training restored from pinned weights: that file
                                                       "weights_from": _TEXT}}},
            {"type": "object", "required": ["unknown", "may_span_commits"], "properties": {"unknown": {"const": True}}},
        ]},
        # the weights the scores came from, pinned beside the records (benchmarks/harness/checkpoints.py)
        "checkpoint": {"oneOf": [
            {"type": "object", "required": ["path", "sha256", "bytes"],
             "properties": {"path": _TEXT, "sha256": {"type": "string", "pattern": "^[0-9a-f]{64}$"}, "bytes": {"type": "integer"}}},
            {"type": "object", "required": ["pinned", "why"], "properties": {"pinned": {"const": False}, "why": _TEXT}},
        ]},
    },
}


class SchemaError(ValueError):
    """A result file that does not match its schema."""


def _describe(data: dict) -> str:
    cell = " / ".join(str(data.get(k)) for k in ("row", "column", "variant") if data.get(k) is not None)
    return f" (cell {cell})" if cell else ""


@cache
def _validator(kind: str):
    import jsonschema

    schema = {"published": PUBLISHED, "record": RECORD}[kind]
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


def validate(data: object, kind: str, path: Path | str) -> None:
    """Raise :class:`SchemaError` naming ``path``, the cell and the field when ``data`` does not match ``kind``'s schema
    (``"published"`` or ``"record"``)."""
    errors = sorted(_validator(kind).iter_errors(data), key=lambda e: list(e.absolute_path))
    if not errors:
        return
    first = errors[0]
    where = "/".join(str(p) for p in first.absolute_path) or "(top level)"
    cell = ""
    if kind == "published" and len(first.absolute_path) >= 2 and first.absolute_path[0] == "cells":
        cell = _describe(data["cells"][first.absolute_path[1]])
    elif isinstance(data, dict):
        cell = _describe(data)
    more = f"; {len(errors) - 1} more problem(s)" if len(errors) > 1 else ""
    raise SchemaError(f"{path}{cell}: field {where}: {first.message}{more}")


#: ``(kind, digest of the bytes)`` of every file this process has validated: validity depends on the bytes alone, and
#: re-validating a record's scores element by element was 9/10 of the regression suite's time (each check loads every
#: record of its benchmark; ``regression_problems`` took 132 s under the profiler, 120 of them in jsonschema)
_VALIDATED: set[tuple[str, bytes]] = set()


def load_validated(path: Path, kind: str) -> dict:
    """Parse and validate one result file; a file that is not JSON is a :class:`SchemaError` naming it. Bytes validated
    before in this process are not validated again (the same bytes, the same verdict)."""
    raw = Path(path).read_bytes()
    try:
        data = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise SchemaError(f"{path}: not valid JSON ({err})") from None
    seen = (kind, hashlib.blake2b(raw, digest_size=16).digest())
    if seen not in _VALIDATED:
        validate(data, kind, path)
        _VALIDATED.add(seen)
    return data
