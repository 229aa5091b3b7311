"""R_FC and R_HV (Goldblum et al. sec. 4.4-4.5) and the released script's versions, each against a loop written from
its formula."""

import itertools

import numpy as np
import torch

from methods.feature_clustering import (
    code_feature_clustering,
    code_hyperplane_variation,
    feature_clustering,
    hyperplane_variation,
    hyperplane_variation_of_batch,
)


def _data(classes=4, per_class=3, dim=5, seed=0):
    g = np.random.default_rng(seed)
    labels = np.repeat(np.arange(classes), per_class)
    return g.normal(size=(classes * per_class, dim)) + 2 * g.normal(size=(classes, dim))[labels], labels


def test_feature_clustering_is_the_papers_ratio():
    f, y = _data()
    C, N = 4, len(y)
    mu = f.mean(0)
    within = sum(np.sum((f[k] - f[y == y[k]].mean(0)) ** 2) for k in range(N))
    between = sum(np.sum((f[y == c].mean(0) - mu) ** 2) for c in range(C))
    got = feature_clustering(torch.from_numpy(f), torch.from_numpy(y)).item()
    assert abs(got - C / N * within / between) < 1e-12
    tight = f.copy()
    for c in range(C):  # point masses: zero (the paper: "classes are represented by distinct point masses")
        tight[y == c] = f[y == c].mean(0)
    assert feature_clustering(torch.from_numpy(tight), torch.from_numpy(y)).item() < 1e-20


def test_hyperplane_variation_over_class_pairs():
    f, y = _data(classes=3, per_class=2)
    want = []
    for a, b in itertools.combinations(range(3), 2):
        x1, x2 = f[y == a]
        y1, y2 = f[y == b]
        want.append(np.linalg.norm((x1 - y1) - (x2 - y2)) / (np.linalg.norm(x1 - y1) + np.linalg.norm(x2 - y2)))
    got = hyperplane_variation_of_batch(torch.from_numpy(f), torch.from_numpy(y)).item()
    assert abs(got - np.mean(want)) < 1e-12
    one = hyperplane_variation(*(torch.from_numpy(v)[None] for v in (f[0], f[1], f[2], f[3])))
    assert abs(one.item() - want[0]) < 1e-12


def test_the_released_scripts_versions():
    g = np.random.default_rng(1)
    groups, dim = 3, 4
    x1, x2, y1, y2 = (g.normal(size=(groups, dim)) for _ in range(4))
    out = torch.from_numpy(np.concatenate([x1, x2, y1, y2]))
    fc, hv = [], []
    for k in range(groups):
        d1, d2 = x1[k] - y1[k], x2[k] - y2[k]
        fc.append((np.linalg.norm(d1 - d2) / ((np.linalg.norm(d1) + np.linalg.norm(d2)) / 2 + 1e-4)) ** 2)
        m1, m2 = (x1[k] + x2[k]) / 2, (y1[k] + y2[k]) / 2
        m = (m1 + m2) / 2
        sw = sum(np.sum((v - c) ** 2) for v, c in ((x1[k], m1), (x2[k], m1), (y1[k], m2), (y2[k], m2)))
        hv.append(sw / (np.sum((m1 - m) ** 2) + np.sum((m2 - m) ** 2) + 1e-6))
    assert abs(code_feature_clustering(out).item() - np.mean(fc)) < 1e-12
    assert abs(code_hyperplane_variation(out).item() - np.mean(hv)) < 1e-12
    # the names look swapped: the script's "hyperplane variation" is the paper's R_FC of each pair of classes, less C/N
    pair = torch.from_numpy(np.stack([x1[0], x2[0], y1[0], y2[0]]))
    paper_fc = feature_clustering(pair, torch.tensor([0, 0, 1, 1])).item()
    assert abs(code_hyperplane_variation(torch.from_numpy(np.stack([x1[0], x2[0], y1[0], y2[0]]))).item() - paper_fc * 4 / 2) < 1e-5


def test_lda_projection_finds_the_most_discriminative_direction():
    """The first discriminant axis has a higher Fisher ratio (between- over within-class variance) than any of 200
    random directions (numpy)."""
    from methods.feature_clustering import lda_projection

    f, y = _data(classes=4, per_class=10, dim=6)

    def fisher(z):
        means = np.array([z[y == c].mean() for c in range(4)])
        return np.var(means) / np.mean([z[y == c].var() for c in range(4)])

    best = fisher(lda_projection(f, y)[:, 0])
    g = np.random.default_rng(5)
    assert all(best >= fisher(f @ (v / np.linalg.norm(v))) for v in g.normal(size=(200, 6)))


def test_the_regularized_loss_is_cross_entropy_plus_the_regulariser():
    from methods.backbones import Conv4
    from methods.classical import LabelledBatch
    from methods.feature_clustering import RegularizedClassifier

    torch.manual_seed(0)
    batch = LabelledBatch(torch.rand(8, 1, 28, 28), torch.tensor([0, 0, 1, 1, 2, 2, 3, 3]))
    def scatter_ratio(features, labels):  # the trained R_FC term: the paper's R_FC without its C/N (Table 8's coefficients hold it)
        return feature_clustering(features, labels) * len(labels) / len(labels.unique())

    for name, reg in (("fc", scatter_ratio), ("hv", hyperplane_variation_of_batch)):
        model = RegularizedClassifier(Conv4(1, 4, pool=True), 4, 5, regularizer=name, coefficient=0.7)
        features = model.backbone(batch.x)
        want = torch.nn.functional.cross_entropy(model.classifier(features), batch.y) + 0.7 * reg(features, batch.y)
        assert torch.allclose(model.outer_loss(batch), want)
