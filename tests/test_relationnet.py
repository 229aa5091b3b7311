"""Relation Networks: shapes and parameter counts by hand, pairing, class sums and the MSE against numpy loops."""

import numpy as np
import pytest
import torch

from metarepro.episodes import Episode
from methods.relationnet import RelationEncoder, RelationNet, class_sums, relation_mse, relation_pairs


def _conv_bn(cin: int, cout: int) -> int:
    return cin * cout * 9 + cout + 2 * cout  # kernel, bias, BatchNorm weight and bias


@pytest.mark.parametrize("channels,size,padding,side,fc_in", [(1, 28, 1, 5, 64), (3, 84, 0, 19, 64 * 3 * 3)])
def test_shapes_and_parameter_counts_match_the_authors_code(channels, size, padding, side, fc_in):
    """Omniglot 28 -> 64x5x5 -> relation 1x1; mini-ImageNet 84 -> 64x19x19 -> relation 3x3 (floodsung/LearningToCompare_FSL)."""
    model = RelationNet(channels, size, relation_padding=padding)
    assert RelationEncoder.output_size(size) == side
    features = model.encoder(torch.rand(4, channels, size, size))
    assert features.shape == (4, 64, side, side)
    encoder = _conv_bn(channels, 64) + 3 * _conv_bn(64, 64)
    relation = _conv_bn(128, 64) + _conv_bn(64, 64) + (fc_in * 8 + 8) + (8 + 1)
    assert sum(p.numel() for p in model.encoder.parameters()) == encoder
    assert sum(p.numel() for p in model.relation.parameters()) == relation
    assert model.relation.fc1.in_features == fc_in


def test_pairs_put_the_class_first_and_enumerate_queries_then_classes():
    g = torch.Generator().manual_seed(0)
    classes, queries = torch.rand(3, 2, 4, 4, generator=g), torch.rand(5, 2, 4, 4, generator=g)
    pairs = relation_pairs(classes, queries).numpy()
    assert pairs.shape == (15, 4, 4, 4)
    for i in range(5):
        for j in range(3):
            np.testing.assert_array_equal(pairs[i * 3 + j], np.concatenate([classes[j].numpy(), queries[i].numpy()]))


def test_classes_are_sums_of_their_support_features():
    g = torch.Generator().manual_seed(1)
    features, labels = torch.rand(6, 2, 3, 3, generator=g, dtype=torch.float64), torch.tensor([2, 0, 1, 0, 2, 2])
    sums = class_sums(features, labels, 3).numpy()
    for c in range(3):
        np.testing.assert_allclose(sums[c], sum(features[i].numpy() for i in range(6) if labels[i] == c), rtol=1e-12)


def test_mse_is_the_mean_squared_error_to_the_one_hot_labels():
    g = torch.Generator().manual_seed(2)
    scores, labels = torch.rand(4, 3, generator=g, dtype=torch.float64), torch.tensor([1, 0, 2, 1])
    by_hand = 0.0
    for m in range(4):
        for n in range(3):
            target = 1.0 if labels[m] == n else 0.0
            by_hand += (float(scores[m, n]) - target) ** 2
    assert float(relation_mse(scores, labels)) == pytest.approx(by_hand / 12, rel=1e-12)
    assert float(relation_mse(scores, labels)) == pytest.approx(float(torch.nn.MSELoss()(scores, torch.eye(3)[labels].double())))


def test_scores_lie_in_the_unit_interval_and_training_lowers_the_loss():
    torch.manual_seed(0)
    model = RelationNet(1, 28, filters=8)
    g = torch.Generator().manual_seed(3)
    prototypes = torch.rand(3, 1, 28, 28, generator=g)
    support = prototypes.repeat_interleave(2, 0) + 0.1 * torch.rand(6, 1, 28, 28, generator=g)
    query = prototypes.repeat_interleave(2, 0) + 0.1 * torch.rand(6, 1, 28, 28, generator=g)
    labels = torch.arange(3).repeat_interleave(2)
    episode = Episode(support, labels, query, labels)
    scores = model.episode_scores(episode)
    assert scores.shape == (6, 3) and bool(((scores > 0) & (scores < 1)).all())
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(40):
        opt.zero_grad()
        model.outer_loss(episode).backward()
        opt.step()
    # 2/9 is the best any constant score can do on 3 classes; 40 steps reach ~0.055 (measured)
    assert float(model.outer_loss(episode).detach()) < 0.1
    assert float(model.score(episode)) == 1.0
