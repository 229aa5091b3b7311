"""The episodic head wrapper: MetaOptNet's label smoothing and prototype head against numpy, and the wrapper with a
prototype head against the suite's ProtoNet."""

import numpy as np
import torch

from metarepro.episodes import Episode
from methods.backbones import Conv4
from methods.head_classifier import HeadClassifier, ProtoHead, smoothed_cross_entropy
from methods.protonet import ProtoNet


def test_smoothed_cross_entropy_is_metaoptnets():
    g = np.random.default_rng(0)
    logits, labels = g.normal(size=(6, 4)), np.array([0, 1, 2, 3, 1, 0])
    log_p = logits - np.log(np.exp(logits).sum(1, keepdims=True))
    target = np.full((6, 4), 0.1 / 3)
    target[np.arange(6), labels] = 0.9
    want = -(target * log_p).sum(1).mean()
    assert abs(smoothed_cross_entropy(torch.from_numpy(logits), torch.from_numpy(labels), 0.1).item() - want) < 1e-12
    assert abs(smoothed_cross_entropy(torch.from_numpy(logits), torch.from_numpy(labels), 0.0).item()
               - torch.nn.functional.cross_entropy(torch.from_numpy(logits), torch.from_numpy(labels)).item()) < 1e-12


def test_proto_head_is_negative_squared_distance_to_class_means_over_the_dimension():
    g = np.random.default_rng(1)
    s, q, y = g.normal(size=(1, 6, 5)), g.normal(size=(1, 4, 5)), np.array([[0, 1, 2, 0, 1, 2]])
    means = np.stack([s[0][y[0] == k].mean(0) for k in range(3)])
    want = -np.array([[((qi - m) ** 2).sum() for m in means] for qi in q[0]]) / 5
    got = ProtoHead()(torch.from_numpy(s), torch.from_numpy(y), torch.from_numpy(q), 3)[0].detach().numpy()
    assert np.abs(got - want).max() < 1e-12


def test_the_wrapper_with_a_prototype_head_is_protonet_in_eval_mode():
    torch.manual_seed(0)
    backbone = Conv4(1, 8, pool=True).eval()
    g = torch.Generator().manual_seed(2)
    batch = Episode(torch.rand(2, 6, 1, 28, 28, generator=g), torch.arange(3).repeat(2).expand(2, -1).clone(),
                    torch.rand(2, 9, 1, 28, 28, generator=g), torch.arange(3).repeat(3).expand(2, -1).clone())
    ours = HeadClassifier(backbone, ProtoHead(normalize=False)).episode_logits(batch)
    theirs = torch.stack([ProtoNet(backbone).episode_logits(batch.task(t)) for t in range(2)])
    assert torch.allclose(ours, theirs, rtol=1e-5, atol=1e-4)
