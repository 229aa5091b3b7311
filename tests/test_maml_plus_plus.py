"""MAML++ (methods/maml_plus_plus.py) against hand-written loops, hand-computed schedules, torch's own cosine scheduler
and float64 finite differences."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from metarepro.episodes import Episode
from metarepro.inner import cross_entropy_per_task
from methods.backbones import ConvNet
from methods.maml import MAML
from methods.maml_plus_plus import MAMLPlusPlus, cosine_meta_lr, norm_parameter_names, step_loss_weights
from tests.conftest import assert_gradient_matches_central_differences

STEPS = 3


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().double().numpy()


def _batch(tasks=2, ways=3, shots=2, queries=2, size=16, seed=1) -> Episode:
    g = torch.Generator().manual_seed(seed)
    x = lambda n: torch.rand(tasks, ways * n, 1, size, size, generator=g, dtype=torch.float64)  # noqa: E731
    y = lambda n: torch.arange(ways).repeat(n).expand(tasks, -1).contiguous()  # noqa: E731
    return Episode(x(shots), y(shots), x(queries), y(queries))


def _model(seed=3, **switches) -> MAMLPlusPlus:
    """A small MAML++ in float64 with every meta-parameter moved off its initial value (no rate or norm row is equal to
    another, so a wrong step index shows)."""
    torch.manual_seed(seed)
    net = ConvNet(1, 3, 4, pool=True, features="flatten", image_size=16, bn_eps=1e-5, activation="leaky_relu").double()
    model = MAMLPlusPlus(net, cross_entropy_per_task, 0.1, STEPS, epoch_length=10, **switches).double()
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=g, dtype=p.dtype))
    return model


def _hand_loop(model: MAMLPlusPlus, batch: Episode, graph: bool = False) -> list[list[torch.Tensor]]:
    """Per task, one at a time: step ``s`` runs the plain network (``functional_call``) with step ``s``'s scale and
    offset, takes the support gradient of the adapted tensors alone and moves each by its own step-``s`` rate; returns
    ``[task][step]`` query logits after each step."""
    own = dict(model.backbone.named_parameters())
    out = []
    for t in range(batch.n_tasks):
        fast = {n: own[n] for n in model.adapted_names}
        per_step = []
        for s in range(STEPS):
            norms = {n: (model.step_norms[n.replace(".", "-")][s] if model.per_step_norms else own[n]) for n in model.norm_names}
            logits = torch.func.functional_call(model.backbone, {**fast, **norms}, (batch.support_x[t],))
            loss = torch.nn.functional.cross_entropy(logits, batch.support_y[t])
            grads = torch.autograd.grad(loss, [fast[n] for n in fast], create_graph=graph)
            fast = {n: fast[n] - model.step_rates[n.replace(".", "-")][s] * g for n, g in zip(fast, grads)}
            per_step.append(torch.func.functional_call(model.backbone, {**fast, **norms}, (batch.query_x[t],)))
        out.append(per_step)
    return out


def test_step_loss_weights_as_computed_by_hand():
    """5 steps, 10 MSL epochs (MAML++'s Omniglot): decay 1/50 per epoch, floor 0.03/5 = 0.006."""
    np.testing.assert_allclose(step_loss_weights(5, 0, 10).numpy(), [0.2] * 5)
    np.testing.assert_allclose(step_loss_weights(5, 5, 10).numpy(), [0.1] * 4 + [0.6])
    np.testing.assert_allclose(step_loss_weights(5, 10, 10).numpy(), [0.006] * 4 + [0.976])
    np.testing.assert_allclose(step_loss_weights(5, 40, 10).numpy(), [0.006] * 4 + [0.976])


def test_cosine_meta_lr_is_torchs_cosine_annealing_stepped_per_epoch():
    param = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.Adam([param], lr=1e-3)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=100, eta_min=1e-5)
    for epoch in range(100):
        assert cosine_meta_lr(epoch, 100, 1e-3, 1e-5) == pytest.approx(optimizer.param_groups[0]["lr"], rel=1e-9, abs=1e-15)
        optimizer.step()
        scheduler.step()


def test_norm_parameters_are_found_and_left_out_of_the_inner_loop():
    model = _model()
    assert sorted(model.norm_names) == sorted(f"norms.{i}.{k}" for i in range(4) for k in ("weight", "bias"))
    assert len(model.adapted_names) == 10  # 4 convs and the head, weight and bias each
    assert norm_parameter_names(torch.nn.Linear(2, 2)) == ()


@pytest.mark.parametrize("engine", ["func", "loop"])
def test_each_step_uses_its_own_rates_and_normalisation_as_a_hand_written_loop(engine):
    model = _model(engine=engine)
    batch = _batch()
    predictions = model.adapt_and_predict(batch, training=False, every_step=True)
    expected = _hand_loop(model, batch)
    for s in range(STEPS):
        for t in range(batch.n_tasks):
            np.testing.assert_allclose(_np(predictions[s][t]), _np(expected[t][s]), rtol=1e-9, atol=1e-11)
    np.testing.assert_allclose(_np(model.predict(batch)), _np(predictions[-1]), rtol=0, atol=0)


def test_multi_step_loss_weighs_every_step_then_only_the_last():
    model = _model()
    batch = _batch()
    expected = _hand_loop(model, batch)
    losses = [np.mean([torch.nn.functional.cross_entropy(expected[t][s], batch.query_y[t]).item() for t in range(2)]) for s in range(STEPS)]
    for epoch, weights in ((0, [1 / 3] * 3), (4, [1 / 3 - 4 / 30] * 2 + [1 / 3 + 8 / 30]), (10, [0.0] * 2 + [1.0])):
        model.meta_iterations.fill_(epoch * 10)  # 10 iterations per epoch
        assert model.outer_loss(batch).item() == pytest.approx(float(np.dot(weights, losses)), rel=1e-9)


def test_with_its_switches_off_it_is_maml_with_frozen_normalisation():
    """No LSLR, one shared normalisation, no multi-step loss: MAML (metarepro.inner's loop), outer loss and meta-gradient."""
    plus = _model(learn_step_rates=False, per_step_norms=False, msl_epochs=0)
    with torch.no_grad():
        for rates in plus.step_rates.values():  # _model moved them; fixed rates stay at inner_lr
            rates.fill_(0.1)
    maml = MAML(plus.backbone, cross_entropy_per_task, 0.1, STEPS, frozen=plus.norm_names)
    batch = _batch()
    ours, theirs = plus.outer_loss(batch), maml.outer_loss(batch)
    assert ours.item() == pytest.approx(theirs.item(), rel=1e-12)
    params = list(plus.backbone.parameters())
    for a, b in zip(torch.autograd.grad(ours, params), torch.autograd.grad(theirs, params)):
        np.testing.assert_allclose(_np(a), _np(b), rtol=1e-9, atol=1e-12)
    assert not any(p.requires_grad for p in plus.step_rates.values())


def test_meta_gradient_of_rates_norm_rows_and_weights_matches_finite_differences():
    model = _model()
    model.meta_iterations.fill_(25)  # epoch 2: the multi-step loss with unequal weights
    batch = _batch(seed=4)
    entries = [(model.step_rates["convs-1-weight"], 0), (model.step_rates["head-bias"], 2), (model.step_norms["norms-2-weight"], 1 * 4 + 3),
               (model.step_norms["norms-0-bias"], 2 * 4 + 1), (model.backbone.convs[0].weight, 5), (model.backbone.head.weight, 7)]
    assert_gradient_matches_central_differences(lambda: model.outer_loss(batch), entries)
    # the rate of the unused extra step (the code allocates steps + 1) gets no gradient
    assert torch.autograd.grad(model.outer_loss(batch), model.step_rates["head-bias"])[0][STEPS].item() == 0.0


def test_train_step_counts_meta_iterations_and_a_reloaded_model_resumes_the_count():
    model = _model()
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    for _ in range(3):
        model.train_step(_batch(), optimizer)
    assert int(model.meta_iterations) == 3
    other = _model(seed=9)
    other.load_state_dict(model.state_dict())
    assert int(other.meta_iterations) == 3
    assert not any(p.requires_grad for n, p in model.backbone.named_parameters() if n in model.norm_names)  # per-step rows replace them


def test_maml_s_plain_adaptation_entry_points_refuse_rather_than_adapt_without_the_switches():
    model, batch = _model(), _batch()
    with pytest.raises(NotImplementedError, match="adapt_and_predict"):
        model.adapt(batch.support_x, batch.support_y)
    with pytest.raises(NotImplementedError, match="per step"):
        model.inner_loop(training=False)
