"""alfa-sinusoid-ablations: each row builds the ALFA configuration its name says, and each claim pairs rows that exist."""

import pytest
import torch

from benchmarks import BENCHMARKS
from benchmarks.alfa.sinusoid_ablations import ROWS
from benchmarks.harness.base import Cell
from methods.alfa import ALFA
from methods.maml import MAML

BENCH = BENCHMARKS["alfa-sinusoid-ablations"]


def _model(row: str, scale: str = "paper"):
    return BENCH.build_model(BENCH.config(Cell(row, "2x40 5-shot"), scale))


def test_paper_scale_is_table8s_protocol_at_five_steps_in_the_code_form():
    cfg = BENCH.config(Cell("ALFA+MAML", "2x40 5-shot"), "paper")
    assert (cfg["iterations"], cfg["inner_steps"], cfg["test_steps"], cfg["meta_batch"], cfg["inner_lr"], cfg["test_points"]) == (
        70_000, 5, 5, 25, 0.01, 100)
    assert (cfg["alfa_form"], cfg["alfa_generator_layers"], cfg["task_family"]) == ("code", 2, "metasgd")
    assert isinstance(_model("MAML"), MAML) and not isinstance(_model("MAML"), ALFA)
    assert [BENCH.config(Cell(f"ALFA+MAML, {k} step{'s' if k > 1 else ''}", "2x40 5-shot"), "paper")["inner_steps"]
            for k in (1, 2, 3, 4)] == [1, 2, 3, 4]


@pytest.mark.parametrize("init", ["MAML init", "Random init"])
@pytest.mark.parametrize("name", ["alpha", "beta"])
@pytest.mark.parametrize("kind", ["fixed-step", "fixed-layer", "adaptive-step", "adaptive-layer"])
def test_table6_rows_vary_one_hyperparameter_and_switch_the_other_off(init, name, kind):
    model = _model(f"{init}, {name} {kind}")
    other = "beta" if name == "alpha" else "alpha"
    assert getattr(model, f"{name}_mode") == kind and getattr(model, f"{other}_mode") == "off"
    assert model.learn_init == (init == "MAML init")
    table = model.alpha0 if name == "alpha" else model.beta0
    assert table.shape == ((5, 1) if kind.endswith("step") else (1, 6))  # 6 parameter tensors in the 2x40 MLP
    assert (model.generator is not None) == kind.startswith("adaptive")


def test_the_random_initialisation_row_meta_learns_nothing_and_alfa_on_it_learns_only_hyperparameters():
    assert not any(p.requires_grad for p in _model("Random init").parameters())
    assert BENCH.protocol_model(Cell("Random init", "2x40 5-shot"), "paper") is None
    alfa = _model("ALFA+Random init")
    assert not any(p.requires_grad for p in alfa.backbone.parameters()) and alfa.generator is not None
    torch.manual_seed(0)  # the same seeded initialisation in both rows
    assert all(torch.equal(a, b) for a, b in zip(_model("Random init").backbone.parameters(), alfa.backbone.parameters()))


def test_the_random_initialisation_is_the_released_codes_glorot_uniform_and_the_meta_learned_rows_start_from_mamls():
    """Glorot-uniform weights lie within +-sqrt(6 / (fan_in + fan_out)) and fill it (variance bound^2 / 3); MAML's
    initialisation is a normal of std 0.01 truncated at 0.02; biases zero in both."""
    for row in ("Random init", "ALFA+Random init", "Random init, beta fixed-layer"):
        for layer in _model(row).backbone.layers:
            out, inp = layer.weight.shape
            bound = (6 / (inp + out)) ** 0.5
            assert layer.weight.abs().max() <= bound and layer.weight.std() > 0.8 * bound / 3 ** 0.5, (row, layer)
            assert not layer.bias.any()
    for row in ("MAML", "ALFA+MAML", "MAML init, beta fixed-layer"):
        assert all(layer.weight.abs().max() <= 0.02 and not layer.bias.any() for layer in _model(row).backbone.layers)


def test_claims_pair_existing_rows_and_the_bounded_variant_only_where_a_generator_is():
    assert not BENCH.variant_applies("MAML", "2x40 5-shot", "bounded")
    assert not BENCH.variant_applies("Random init", "2x40 5-shot", "bounded")
    assert not BENCH.variant_applies("MAML init, alpha fixed-step", "2x40 5-shot", "bounded")
    assert BENCH.variant_applies("MAML init, beta adaptive-layer", "2x40 5-shot", "bounded")
    generator = {row: BENCH.variant_applies(row, "2x40 5-shot", "bounded") for row in ROWS}
    claims = BENCH.paired_claims()
    within = [c for c in claims if len(c) == 3]
    across = [c for c in claims if len(c) == 5]
    assert len(within) == 21 and len(within) + len(across) == len(claims)
    assert all(base in ROWS and method in ROWS for _, base, method, *_ in claims)
    # where one row has a generator, its bounded run against the other's main run (a row without one has no bounded run)
    assert [c[1:] for c in across] == [(b, m, "bounded" if generator[b] else "main", "bounded" if generator[m] else "main")
                                       for _, b, m in within if generator[b] != generator[m]]
    assert len(across) == 17
    # Table 6's two turned-round claims (beta fixed beats adaptive, from MAML's initialisation) have the generator as baseline
    assert sorted(c[1:] for c in across if c[3] == "bounded") == [
        (f"MAML init, beta adaptive-{per}", f"MAML init, beta fixed-{per}", "bounded", "main") for per in ("layer", "step")]


def test_table6_claims_take_the_tables_direction_where_its_numbers_contradict_its_sentence():
    """Table 6 from MAML's initialisation: beta fixed 66.78 / 66.30 against adaptive 66.04 / 65.10 (fixed better in both)."""
    table6 = [(base, method) for _, base, method, *_ in BENCH.paired_claims() if "fixed" in base + method]
    for base, method in table6:
        if base.startswith("MAML init, beta"):
            assert "adaptive" in base and "fixed" in method
        else:
            assert "fixed" in base and "adaptive" in method
    assert len(set(table6)) == 8


def test_plan_prices_a_row_with_nothing_to_meta_learn_at_its_test_only():
    seconds = {row: BENCH.estimated_seconds(Cell(row, "2x40 5-shot"), "paper") for row in ("Random init", "MAML", "ALFA+MAML",
                                                                                              "MAML init, alpha fixed-step")}
    assert seconds["Random init"] < 10 < seconds["MAML"] == seconds["MAML init, alpha fixed-step"] < seconds["ALFA+MAML"]
