"""Choosing among candidates on validation scores, and checking a record's choice against its own scores.

Several protocols choose a setting on validation episodes: a regulariser's coefficient (``unraveling-omniglot``'s tuned
rows), a fine-tuning head's (step size, steps) (``unraveling-omniglot-heads``, ``vinyals2016-table1``, the
``unraveling-table*`` MAML head), the number of ground steps ``T`` (``hyperrepr-*``). The score of each candidate is a
mean of per-episode accuracies, each a float32 fraction of the episode's queries (averaged in float64), so two
candidates that classify the same number of validation queries correctly tie, but their means can differ in the last
digits (the same total spread over the episodes otherwise: each fraction rounds its own way). ``max`` then picks one of
them by rounding. :func:`best_finite` treats scores within :data:`TIE_REL_TOL` of the best as equal and takes the first
in the candidates' order, which every protocol here lists from the smallest coefficient, step size (then step count)
and ``T``.

A record keeps the scores its choice was made on; :func:`selection_change` re-makes the choice from them (in the order of
the grid its configuration names), and a record whose choice differs is stale
(:func:`benchmarks.harness.runner.record_is_current`): ``reproduce`` makes it again. A choice follows from the
scores, which are not reproducible beyond them: the same pinned weights re-scored in fresh processes gave the same
scores each time, but two of a 30-point fine-tuning grid one query of 15,000 off the values of the process that first
scored them (which had fine-tuned another model before; 40 SGD steps turn a last-bit difference into an argmax flip),
so a near-tie can turn either way.

Early stopping's choice of a checkpoint (:class:`metarepro.trainer.EarlyStopping`) is left as it is: it compares float
validation values with ``<`` (or ``>=``) as the authors' code does, and changing it would change trainings.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping

#: scores closer than this (relative) to the best one tie with it. One validation query moves a mean accuracy by
#: 100 / (episodes x queries) points: above 1e-5 relative for every protocol here (at most 90,000 validation queries,
#: hyperrepr-omniglot's, at up to 100%). Two equal totals differ at most by the rounding of each episode's float32
#: fraction, 2^-24 relative each, so by under 1.2e-7 relative whatever the number of episodes (the ties found in pinned
#: records differed by 1.5e-9 and 3e-10)
TIE_REL_TOL = 1e-6

#: where a record's configuration lists the candidates of each kind of choice, in the order they were tried
GRID_KEYS = {"maml_head": ("maml_grid", "maml_head_grid"), "fine_tuning": ("finetune_grid",),
             "validation_accuracy_by_T": ("t_grid",)}


def grid_name(lr: float, steps: int) -> str:
    """How a record names the fine-tuning grid's point ``(lr, steps)``."""
    return f"lr={lr} steps={steps}"


def recorded_grid(scores: Mapping[tuple[float, int], float]) -> dict[str, float | str]:
    """A fine-tuning grid's validation scores as a record keeps them: by :func:`grid_name`, ``"diverged"`` for NaN."""
    return {grid_name(lr, steps): (float(v) if math.isfinite(v) else "diverged") for (lr, steps), v in scores.items()}


def best_finite(scores: Mapping[Hashable, float], what: str):
    """The key of the highest finite score, the first in ``scores``' order among those within :data:`TIE_REL_TOL` of it
    (module docstring); a diverged candidate scores NaN (plain ``max`` would rank it by its position). Raises
    ``FloatingPointError`` naming ``what`` if none is finite."""
    finite = {k: float(v) for k, v in scores.items() if math.isfinite(v)}
    if not finite:
        raise FloatingPointError(f"{what}: every choice diverged ({list(scores)})")
    top = max(finite.values())
    return next(k for k, v in finite.items() if math.isclose(v, top, rel_tol=TIE_REL_TOL, abs_tol=0.0))


def _grid_score(value) -> float:
    return float(value) if isinstance(value, (int, float)) else math.nan  # "diverged" is stored as a word


def _in_config_order(scores: dict[str, float], record: dict, field: str) -> dict[str, float]:
    """``scores`` in the order the record's configuration lists the candidates (the order they were tried; a JSON file's
    key order is not to be relied on); names the configuration does not list keep their place after them."""
    config = record.get("config") or {}
    listed = next((config[k] for k in GRID_KEYS[field] if isinstance(config.get(k), list)), None)
    if listed is None:
        return scores
    names = [str(c) if field == "validation_accuracy_by_T" else grid_name(*c) for c in listed]
    return {**{n: scores[n] for n in names if n in scores}, **scores}


def recorded_choices(record: dict) -> list[tuple[str, dict[str, float], str]]:
    """Each validation choice ``record`` made, as ``(field, scores by candidate in the order tried, the candidate it
    chose)``: a regulariser's ``selection``, a fine-tuning ``maml_head`` / ``fine_tuning`` grid, a ``T`` chosen from
    ``validation_accuracy_by_T``."""
    out = []
    selection = record.get("selection")  # also early stopping's (selected iteration), not a choice among candidates
    if isinstance(selection, dict) and isinstance(selection.get("validation_accuracy"), list) and "coefficients" in selection:
        scores = {str(c): _grid_score(v) for c, v in zip(selection["coefficients"], selection["validation_accuracy"])}
        out.append(("selection", scores, str(selection["chosen"])))
    for field in ("maml_head", "fine_tuning"):
        grid = record.get(field) or {}
        if isinstance(grid.get("grid"), dict) and len(grid["grid"]) > 1:
            scores = {name: _grid_score(v) for name, v in grid["grid"].items()}
            out.append((field, _in_config_order(scores, record, field), grid_name(grid["lr"], grid["steps"])))
    if isinstance(record.get("validation_accuracy_by_T"), dict) and "selected_T" in record:
        scores = {t: _grid_score(v) for t, v in record["validation_accuracy_by_T"].items()}
        out.append(("validation_accuracy_by_T", _in_config_order(scores, record, "validation_accuracy_by_T"),
                    str(record["selected_T"])))
    return out


def selection_change(record: dict) -> str | None:
    """Why ``record``'s validation choice is not the one :func:`best_finite` makes from the record's own scores (an older
    rule broke a tie otherwise), or None."""
    for field, scores, chosen in recorded_choices(record):
        if any(math.isfinite(v) for v in scores.values()):
            best = best_finite(scores, field)
            if best != chosen:
                return f"its {field} chose {chosen}; the tie rule now chooses {best} from the same validation scores"
    return None
