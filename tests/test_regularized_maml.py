"""Guiroy et al.'s coherence correction against autograd of the penalty itself, in float64."""

import torch

from methods.regularized_maml import coherence_correction


def test_correction_is_one_gradient_step_on_the_penalty_with_u_mu_depending_on_every_task():
    g = torch.Generator().manual_seed(0)
    start = {"a": torch.randn(3, 2, generator=g, dtype=torch.float64), "b": torch.randn(4, generator=g, dtype=torch.float64)}
    adapted = {n: v.unsqueeze(0) + 0.3 * torch.randn(5, *v.shape, generator=g, dtype=torch.float64) for n, v in start.items()}
    gamma = 0.5
    got = coherence_correction(start, adapted, gamma)
    flat_start = torch.cat([start[n].flatten() for n in start])
    for i in range(5):
        leaves = [adapted[n][i].clone().requires_grad_() for n in start]
        rows = [torch.cat([adapted[n][j].flatten() for n in start]) for j in range(5)]
        rows[i] = torch.cat([leaf.flatten() for leaf in leaves])  # task i's solution as the variable; u_mu depends on it
        u = [(r - flat_start) / (r - flat_start).norm() for r in rows]
        omega = -(u[i] * torch.stack(u).mean(0)).sum()
        grads = torch.autograd.grad(omega, leaves)
        for n, leaf, gr in zip(start, leaves, grads):
            torch.testing.assert_close(got[n][i], leaf.detach() - gamma * gr, rtol=1e-12, atol=1e-12)


def test_correction_raises_the_mean_cosine_and_leaves_a_still_task_alone():
    g = torch.Generator().manual_seed(1)
    start = {"w": torch.zeros(50, dtype=torch.float64)}
    adapted = {"w": torch.randn(6, 50, generator=g, dtype=torch.float64) + 0.5}
    adapted["w"][5] = 0.0  # did not move

    def coherence(p):
        u = p["w"][:5] / p["w"][:5].norm(dim=1, keepdim=True)
        return float((u @ u.T).sum() - 5) / 20

    got = coherence_correction(start, adapted, gamma=0.5)
    assert coherence(got) > coherence(adapted) + 1e-3
    assert torch.equal(got["w"][5], adapted["w"][5])
