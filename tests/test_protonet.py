"""Prototypical Networks: maths against numpy loops, Conv-4 sizes by hand, learning on a fixture."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from metarepro.data.fixtures import make_omniglot
from metarepro.data.omniglot import ClassPool, load_cache
from metarepro.episodes import Episode, task_rng
from methods.backbones import Conv4
from methods.protonet import ProtoNet, prototypes, squared_euclidean


def test_prototypes_and_distances_match_numpy_loops():
    rng = np.random.default_rng(0)
    emb = rng.normal(size=(12, 7))
    labels = np.array([2, 0, 1, 2, 0, 1, 1, 2, 0, 0, 1, 2])
    got = prototypes(torch.tensor(emb), torch.tensor(labels), 3).numpy()
    for c in range(3):
        members = [emb[i] for i in range(12) if labels[i] == c]
        np.testing.assert_allclose(got[c], sum(members) / len(members), rtol=1e-12)
    q = rng.normal(size=(5, 7))
    d = squared_euclidean(torch.tensor(q), torch.tensor(got)).numpy()
    for i in range(5):
        for c in range(3):
            assert abs(d[i, c] - sum((q[i][k] - got[c][k]) ** 2 for k in range(7))) < 1e-10


def test_conv4_parameter_counts_by_hand():
    def count(m):
        return sum(p.numel() for p in m.parameters())

    # conv 3x3: 9*in*out + out; BatchNorm: 2*out
    assert count(Conv4(1, 64)) == (9 * 1 * 64 + 64 + 128) + 3 * (9 * 64 * 64 + 64 + 128) == 111_936
    assert count(Conv4(3, 32)) == (9 * 3 * 32 + 32 + 64) + 3 * (9 * 32 * 32 + 32 + 64)
    assert Conv4(1, 64, pool=True)(torch.zeros(2, 1, 28, 28)).shape == (2, 64)  # 28 -> 14 -> 7 -> 3 -> 1
    assert Conv4(1, 64, pool=False)(torch.zeros(2, 1, 28, 28)).shape == (2, 64)
    assert Conv4(3, 32, pool=True)(torch.zeros(2, 3, 84, 84)).shape == (2, 32 * 5 * 5)  # 84 -> 42 -> 21 -> 10 -> 5


def test_protonet_learns_on_the_omniglot_fixture(tmp_path):
    torch.manual_seed(0)
    root = make_omniglot(tmp_path, alphabets=(("images_background", "Alpha", 6), ("images_evaluation", "Beta", 4)))
    cache = load_cache(root, log=lambda *_: None)
    train = ClassPool.from_split(cache, [(c, r) for c in cache.characters[:6] for r in (0, 90, 180, 270)], "train")
    test = ClassPool.from_split(cache, [(c, r) for c in cache.characters[6:] for r in (0, 90, 180, 270)], "test")
    model = ProtoNet(Conv4(1, 16))

    def accuracy():
        model.eval()
        return float(torch.cat([model.score(test.sample(task_rng(1, "test", i), 5, 1, 5)) for i in range(40)]).mean())

    before = accuracy()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    model.train()
    for i in range(60):
        opt.zero_grad()
        model.outer_loss(train.sample(task_rng(0, "train", i), 10, 1, 5)).backward()
        opt.step()
    after = accuracy()
    assert after > max(before, 0.2) + 0.1, f"5-way accuracy {before:.2f} -> {after:.2f} (chance 0.20)"


def test_embedding_once_gives_the_per_episode_accuracies(tmp_path):
    from methods.protonet import episode_accuracies_from_embeddings

    torch.manual_seed(0)
    root = make_omniglot(tmp_path, alphabets=(("images_background", "Alpha", 3), ("images_evaluation", "Beta", 4)))
    cache = load_cache(root, log=lambda *_: None)
    pool = ClassPool.from_split(cache, [(c, r) for c in cache.characters for r in (0, 90, 180, 270)], "test")
    model = ProtoNet(Conv4(1, 8)).double().eval()
    shots, queries, ways = 2, 3, 20
    episodes = [pool.sample_indices(task_rng(5, "test", i), ways, shots, queries) for i in range(25)]

    images = torch.from_numpy(pool.all_images()).double().div(255).unsqueeze(2)  # (classes, 20, 1, 28, 28)
    with torch.no_grad():
        embeddings = model.backbone(images.flatten(0, 1)).view(len(pool), 20, -1)
    once = episode_accuracies_from_embeddings(embeddings, episodes, shots)

    per_episode = torch.cat([model.score(pool.sample(task_rng(5, "test", i), ways, shots, queries).to("cpu", torch.float64))
                             for i in range(25)])
    assert torch.equal(once, per_episode.to(once.dtype))
    assert 0 < once.mean() < 1  # a non-trivial comparison


def _relu_then_pool_reference(model: Conv4, x: torch.Tensor) -> torch.Tensor:
    """The textbook block order, conv -> BN -> ReLU -> max-pool, with the module's own parameters, in the memory layout
    Conv4 computes in on CPU (channels-last), so that the convolutions sum in the same order and equality can be exact."""
    x = x.to(memory_format=torch.channels_last)
    for block in model.blocks:
        conv, bn = block[0], block[1]
        x = F.max_pool2d(F.relu(F.batch_norm(conv(x), None, None, bn.weight, bn.bias, training=True, eps=bn.eps)), 2)
    return x.flatten(1)


def test_pool_before_relu_is_exactly_the_textbook_block_order():
    torch.manual_seed(3)
    model = Conv4(1, 8).double().train()
    for p in model.parameters():  # BN scales of both signs, so max-pool and BN do not commute
        torch.nn.init.normal_(p)
    x = torch.rand(6, 1, 28, 28, dtype=torch.float64).round()  # binary images: many exact ties inside pooling windows
    params = list(model.parameters())
    ours = model(x)
    reference = _relu_then_pool_reference(model, x)
    assert torch.equal(ours, reference)
    g = torch.randn_like(ours)
    for a, b in zip(torch.autograd.grad(ours, params, g), torch.autograd.grad(reference, params, g)):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("channels, size", [(1, 28), (3, 84)])
def test_channels_last_features_equal_the_nchw_computation_in_order(channels, size):
    """Conv4 runs channels-last on CPU for speed; its features must be the NCHW network's, flattened in (c, h, w) order
    (at 84 px the last block is 5x5, where a wrong flatten of the NHWC tensor would permute them)."""
    torch.manual_seed(5)
    model = Conv4(channels, 8).double().train()
    x = torch.rand(4, channels, size, size, dtype=torch.float64)
    reference = x.contiguous()
    for block in model.blocks:
        reference = block(reference).contiguous()
    strides = []
    model.blocks[1].register_forward_pre_hook(lambda module, args: strides.append(args[0].stride()))
    features = model(x)
    assert strides[0][1] == 1  # the second block's input is NHWC: the fast path really ran
    torch.testing.assert_close(features, reference.flatten(1), rtol=1e-12, atol=1e-12)


def test_the_nchw_layout_computes_exactly_as_before_channels_last():
    """Records made before 2026-12-06 were scored in NCHW: under ``conv4_layout("nchw")`` Conv4 is bit for bit the plain
    NCHW network (so they re-score identically); an unknown layout is refused."""
    from methods.backbones import conv4_layout

    torch.manual_seed(6)
    model = Conv4(1, 16).train()
    x = torch.rand(10, 1, 28, 28)
    reference = model.blocks(x).flatten(1)
    strides = []
    model.blocks[1].register_forward_pre_hook(lambda module, args: strides.append(args[0].stride()))
    with conv4_layout("nchw"):
        old = model(x)
    model(x)  # the default, channels-last
    assert torch.equal(old, reference) and strides[0][1] != 1 and strides[1][1] == 1
    with pytest.raises(ValueError, match="unknown Conv4 layout"), conv4_layout("nhwc"):
        pass


def test_training_episode_embeds_support_and_query_in_one_batch():
    """Snell et al.'s code: BatchNorm statistics over support and query together (training mode)."""
    torch.manual_seed(4)
    model = ProtoNet(Conv4(1, 8)).double().train()
    support, query = torch.rand(6, 1, 28, 28, dtype=torch.float64), torch.rand(9, 1, 28, 28, dtype=torch.float64)
    support_y, query_y = torch.tensor([0, 1, 2, 0, 1, 2]), torch.arange(3).repeat(3)
    logits = model.episode_logits(Episode(support, support_y, query, query_y))
    z = _relu_then_pool_reference(model.backbone, torch.cat([support, query])).detach().numpy()
    protos = np.stack([z[:6][support_y.numpy() == c].mean(0) for c in range(3)])
    expected = -((z[6:, None, :] - protos[None]) ** 2).sum(-1)
    np.testing.assert_allclose(logits.detach().numpy(), expected, rtol=1e-10)
    separate = model.logits(model.adapt(support, support_y), query).detach().numpy()
    assert np.abs(separate - expected).max() > 1e-3  # two passes would be a different model in training mode
