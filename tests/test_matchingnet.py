"""Matching Networks: attention and label distribution against numpy loops; FCE shapes, permutation behaviour, learning."""

import numpy as np
import pytest
import torch
from torch import nn

from metarepro.episodes import Episode
from methods.matchingnet import MatchingNet, cosine_attention, label_distribution


def test_attention_and_label_distribution_match_numpy_loops():
    rng = np.random.default_rng(0)
    q, s = rng.normal(size=(4, 5)), rng.normal(size=(6, 5))
    y = np.array([0, 1, 2, 0, 1, 2])
    a = cosine_attention(torch.tensor(q), torch.tensor(s)).numpy()
    p = label_distribution(torch.tensor(a), torch.tensor(y), 3).numpy()
    for m in range(4):
        cos = np.array([q[m] @ s[i] / np.linalg.norm(q[m]) / np.linalg.norm(s[i]) for i in range(6)])
        expected = np.exp(cos) / np.exp(cos).sum()
        np.testing.assert_allclose(a[m], expected, rtol=1e-12)
        np.testing.assert_allclose(p[m], [expected[y == c].sum() for c in range(3)], rtol=1e-12)
    np.testing.assert_allclose(p.sum(1), 1.0, rtol=1e-12)


def test_support_normalised_attention_matches_a_numpy_loop_and_ranks_like_cosine():
    rng = np.random.default_rng(1)
    q, s = 3.0 * rng.normal(size=(4, 5)), rng.normal(size=(6, 5))
    a = cosine_attention(torch.tensor(q), torch.tensor(s), similarity="support-normalised").numpy()
    cosine = cosine_attention(torch.tensor(q), torch.tensor(s)).numpy()
    for m in range(4):
        logits = np.array([q[m] @ s[i] / np.linalg.norm(s[i]) for i in range(6)])  # Antoniou's DistanceNetwork
        np.testing.assert_allclose(a[m], np.exp(logits) / np.exp(logits).sum(), rtol=1e-12)
    np.testing.assert_array_equal(a.argmax(1), cosine.argmax(1))  # the query's norm only sharpens the softmax
    assert (a.max(1) > cosine.max(1)).all()  # |q| ~ 6.7 > 1: sharper than cosine's logits in [-1, 1]
    with pytest.raises(ValueError, match="similarity"):
        cosine_attention(torch.tensor(q), torch.tensor(s), similarity="l3")
    with pytest.raises(ValueError, match="similarity"):
        MatchingNet(Flat(), similarity="dot")


class Flat(nn.Module):
    def __init__(self, d=6):
        super().__init__()
        self.fc = nn.Linear(16, d)

    def forward(self, x):
        return self.fc(x.flatten(1))


def _episode(seed=0, ways=3, shots=2, queries=2):
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(ways, 1, 4, 4, generator=g)
    sx = centres.repeat_interleave(shots, 0) + 0.1 * torch.randn(ways * shots, 1, 4, 4, generator=g)
    qx = centres.repeat_interleave(queries, 0) + 0.1 * torch.randn(ways * queries, 1, 4, 4, generator=g)
    return Episode(sx, torch.arange(ways).repeat_interleave(shots), qx, torch.arange(ways).repeat_interleave(queries))


def test_without_fce_the_prediction_ignores_the_support_order_and_with_fce_it_may_not():
    torch.manual_seed(0)
    e = _episode()
    perm = torch.tensor([3, 0, 5, 1, 4, 2])
    shuffled = Episode(e.support_x[perm], e.support_y[perm], e.query_x, e.query_y)
    plain = MatchingNet(Flat())
    torch.testing.assert_close(plain.episode_probabilities(e), plain.episode_probabilities(shuffled))
    fce = MatchingNet(Flat(), fce=True, dim=6, read_steps=2)
    probs = fce.episode_probabilities(e)
    assert probs.shape == (6, 3) and torch.allclose(probs.sum(1), torch.ones(6))
    assert not torch.allclose(probs, fce.episode_probabilities(shuffled))  # the bidirectional LSTM reads S in order
    with pytest.raises(ValueError, match="dim"):
        MatchingNet(Flat(), fce=True)


@pytest.mark.parametrize("fce, similarity", [(False, "cosine"), (True, "cosine"), (False, "support-normalised")])
def test_training_lowers_the_loss(fce, similarity):
    torch.manual_seed(0)
    model = MatchingNet(Flat(), fce=fce, dim=6, similarity=similarity)
    batch = Episode.stack([_episode(s) for s in range(4)])
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    first = float(model.outer_loss(batch).detach())
    for _ in range(50):
        opt.zero_grad()
        model.outer_loss(batch).backward()
        opt.step()
    assert float(model.outer_loss(batch).detach()) < 0.8 * first
