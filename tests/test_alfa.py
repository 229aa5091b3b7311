"""ALFA's update rule against a hand-written numpy computation of eq. 4 and eq. 7."""

import numpy as np
import pytest
import torch

from metarepro.episodes import SINUSOID_METASGD
from metarepro.inner import mse_per_task
from methods.alfa import ALFA
from methods.backbones import MLP


def numpy_generator(model, state):
    """The generator MLP in numpy: linear layers with ReLU between."""
    linears = [m for m in model.generator if isinstance(m, torch.nn.Linear)]
    h = state
    for i, lin in enumerate(linears):
        h = h @ lin.weight.detach().double().numpy().T + lin.bias.detach().double().numpy()
        if i < len(linears) - 1:
            h = np.maximum(h, 0)
    return h


@pytest.mark.parametrize("form", ["paper", "code", "bounded"])
@pytest.mark.parametrize("learn_init", [True, False])
def test_one_alfa_step_matches_eq4_and_eq7(form, learn_init):
    torch.manual_seed(0)
    model = ALFA(MLP([1, 5, 5, 1], init="torch"), mse_per_task, inner_lr=0.03, inner_steps=1, form=form,
                 learn_init=learn_init).double()
    with torch.no_grad():  # move every meta-parameter off its initial value, so no term is trivially 1 or 0
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    batch = SINUSOID_METASGD.train_batch(3, 0, 1, 5, 5).to("cpu", torch.float64)
    adapted = model.adapt(batch.support_x, batch.support_y, training=True)

    names = model.names
    theta = {n: p.detach().double().numpy() for n, p in model.backbone.named_parameters()}
    leaves = {n: torch.tensor(v, requires_grad=True) for n, v in theta.items()}
    pred = torch.func.functional_call(model.backbone, leaves, (batch.support_x[0],))
    loss = ((pred - batch.support_y[0]) ** 2).mean()
    grads = dict(zip(names, (g.numpy() for g in torch.autograd.grad(loss, [leaves[n] for n in names]))))
    state = np.array([theta[n].mean() for n in names] + [grads[n].mean() for n in names])  # tau_bar, 2N
    out = numpy_generator(model, state)
    n_layers = len(names)
    alpha1, beta1 = out[:n_layers], out[n_layers:]
    if form == "bounded":
        alpha1, beta1 = 2 / (1 + np.exp(-alpha1)), 2 / (1 + np.exp(-beta1))
    alpha0 = model.alpha0.detach().numpy()[0]
    beta0 = model.beta0.detach().numpy()[0]
    for i, n in enumerate(names):
        alpha = alpha0[i] * alpha1[i]  # eq. 7
        beta = beta0[i] * beta1[i]
        if not learn_init:
            beta = beta * model.beta0_per_param[n.replace(".", "-")].detach().numpy()
        if form == "paper" and learn_init:
            expected = beta * theta[n] - alpha * grads[n]  # eq. 4
        else:
            expected = (1 - beta) * theta[n] - alpha * grads[n]  # released code's form
        np.testing.assert_allclose(adapted.params[n][0].detach().numpy(), expected, rtol=1e-10, atol=1e-12)


def test_alfa_paper_and_bounded_forms_start_as_maml():
    """With the chosen initialisations the first ALFA update is MAML's SGD step (eq. 4 with beta = 1)."""
    from methods.maml import MAML

    batch = SINUSOID_METASGD.train_batch(3, 0, 4, 5, 5).to("cpu", torch.float64)
    torch.manual_seed(0)
    maml = MAML(MLP([1, 8, 1], init="torch").double(), mse_per_task, 0.03125, 2)  # exact in float32
    ref = maml.adapt(batch.support_x, batch.support_y).params
    for form in ("paper", "bounded"):
        alfa = ALFA(MLP([1, 8, 1]).double(), mse_per_task, 0.03125, 2, form=form).double()
        alfa.backbone.load_state_dict(maml.backbone.state_dict())
        if form == "bounded":  # its weight decay starts at 5e-4 * lr: switch it off for the comparison
            with torch.no_grad():
                alfa.beta0.zero_()
        got = alfa.adapt(batch.support_x, batch.support_y).params
        for n in ref:
            torch.testing.assert_close(got[n], ref[n], rtol=1e-12, atol=1e-14)


def test_alfa_rejects_unknown_form():
    with pytest.raises(ValueError, match="unknown ALFA form"):
        ALFA(MLP([1, 2, 1]), mse_per_task, 0.01, 1, form="adam")


def _expected_rate(mode, table, generated, step, layer, constant):
    """A hyperparameter's value from its definition (methods.alfa's docstring), written out case by case."""
    if mode == "off":
        return constant
    return {"alfa": lambda: table[step, layer] * generated[layer],
            "fixed-step": lambda: table[step, 0],
            "fixed-layer": lambda: table[0, layer],
            "adaptive-step": lambda: table[step, 0] * generated[0],
            "adaptive-layer": lambda: table[0, layer] * generated[layer]}[mode]()


@pytest.mark.parametrize("generator_input, alpha, beta", [
    ("weights", "alfa", "alfa"), ("gradients", "alfa", "alfa"),  # Table 5's inputs
    ("both", "fixed-step", "off"), ("both", "fixed-layer", "off"), ("both", "adaptive-step", "off"), ("both", "adaptive-layer", "off"),
    ("both", "off", "fixed-step"), ("both", "off", "fixed-layer"), ("both", "off", "adaptive-step"), ("both", "off", "adaptive-layer"),
    ("gradients", "adaptive-step", "adaptive-layer"),
])
def test_the_ablation_switches_give_their_defined_updates_over_two_steps(generator_input, alpha, beta):
    torch.manual_seed(1)
    model = ALFA(MLP([1, 5, 5, 1], init="torch"), mse_per_task, inner_lr=0.03, inner_steps=2, form="code", generator_layers=2,
                 generator_input=generator_input, alpha=alpha, beta=beta).double()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    batch = SINUSOID_METASGD.train_batch(6, 0, 1, 5, 5).to("cpu", torch.float64)
    adapted = model.adapt(batch.support_x, batch.support_y, training=True)

    names, n_layers = model.names, len(model.names)
    widths = {"alfa": n_layers, "adaptive-layer": n_layers, "adaptive-step": 1}
    a_width, b_width = widths.get(alpha, 0), widths.get(beta, 0)
    assert (model.generator is None) == (a_width + b_width == 0)
    tables = {k: None if t is None else t.detach().numpy() for k, t in (("alpha", model.alpha0), ("beta", model.beta0))}
    theta = {n: p.detach().numpy() for n, p in model.backbone.named_parameters()}
    for step in range(2):
        leaves = {n: torch.tensor(v, requires_grad=True) for n, v in theta.items()}
        pred = torch.func.functional_call(model.backbone, leaves, (batch.support_x[0],))
        loss = ((pred - batch.support_y[0]) ** 2).mean()
        grads = dict(zip(names, (g.numpy() for g in torch.autograd.grad(loss, [leaves[n] for n in names]))))
        weights_half, grads_half = [theta[n].mean() for n in names], [grads[n].mean() for n in names]
        state = np.array({"both": weights_half + grads_half, "weights": weights_half, "gradients": grads_half}[generator_input])
        out = numpy_generator(model, state) if model.generator is not None else np.zeros(0)
        alpha1, beta1 = out[:a_width], out[a_width:a_width + b_width]
        new = {}
        for i, n in enumerate(names):
            lr = _expected_rate(alpha, tables["alpha"], alpha1, step, i, 0.03)
            decay = _expected_rate(beta, tables["beta"], beta1, step, i, 0.0)
            new[n] = (1 - decay) * theta[n] - lr * grads[n]
        theta = new
    for n in names:
        np.testing.assert_allclose(adapted.params[n][0].detach().numpy(), theta[n], rtol=1e-10, atol=1e-12)


def test_unknown_ablation_switches_are_refused():
    for kwargs in ({"generator_input": "both+"}, {"alpha": "per-step"}, {"beta": "fixed"}):
        with pytest.raises(ValueError, match="unknown"):
            ALFA(MLP([1, 5, 1]), mse_per_task, 0.01, 1, **kwargs)
