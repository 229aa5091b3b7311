"""R2-D2's encoder (both forms) and MetaOptNet's ResNet-12: feature sizes, parameter counts by hand, and DropBlock's
mask against a loop written from the authors' ``_compute_block_mask``."""

import numpy as np
import pytest
import torch

from methods.backbones import Conv4
from methods.r2d2_encoder import R2D2Encoder
from methods.resnet12 import ResNet12, dropblock_gamma, dropblock_mask


@pytest.mark.parametrize("form, sizes", [("r2d2", {28: 3584, 32: 8064, 84: 72576}), ("metaoptnet", {28: 3968, 32: 8192, 84: 51200})])
def test_r2d2_encoder_feature_sizes(form, sizes):
    net = R2D2Encoder(3, form=form).eval()
    for px, d in sizes.items():
        assert net(torch.zeros(1, 3, px, px)).shape == (1, d)


def _conv(i, o, k, bias):
    return i * o * k * k + (o if bias else 0)


def test_parameter_counts_by_hand():
    widths = [3, 96, 192, 384, 512]
    r2d2 = sum(_conv(widths[i], widths[i + 1], 3, True) + 2 * widths[i + 1] for i in range(4))  # conv + BN scale/shift
    assert r2d2 == 2_605_056
    for form in ("r2d2", "metaoptnet"):
        assert sum(p.numel() for p in R2D2Encoder(3, form=form).parameters()) == r2d2
    assert sum(p.numel() for p in R2D2Encoder(1).parameters()) == r2d2 - 2 * 96 * 9
    widths = [3, 64, 160, 320, 640]
    resnet = sum(_conv(widths[i], widths[i + 1], 3, False) + 2 * _conv(widths[i + 1], widths[i + 1], 3, False)
                 + _conv(widths[i], widths[i + 1], 1, False) + 4 * 2 * widths[i + 1] for i in range(4))
    assert resnet == 12_424_320 == sum(p.numel() for p in ResNet12(3).parameters())


@pytest.mark.parametrize("px, d", [(28, 640), (32, 2560), (84, 16000)])
def test_resnet12_feature_sizes(px, d):
    assert ResNet12(3).eval()(torch.zeros(1, 3, px, px)).shape == (1, d)


def _authors_block_mask(seeds: np.ndarray, b: int) -> np.ndarray:
    """MetaOptNet's ``_compute_block_mask``, as a loop: pad the seeds by ((b-1)//2, b//2), then set ``b x b`` ones starting
    at each seed's unpadded index."""
    left, right = (b - 1) // 2, b // 2
    padded = np.pad(seeds, ((0, 0), (0, 0), (left, right), (left, right)))
    for n, c, i, j in zip(*np.nonzero(seeds)):
        padded[n, c, i:i + b, j:j + b] = 1
    return 1 - padded


@pytest.mark.parametrize("b", [2, 3, 5])
def test_dropblock_mask_is_the_authors(b):
    seeds = (np.random.default_rng(b).random((2, 3, 10 - b + 1, 10 - b + 1)) < 0.1).astype(np.float64)
    ours = dropblock_mask(torch.from_numpy(seeds), b).numpy()
    assert ours.shape == (2, 3, 10, 10) and np.array_equal(ours, _authors_block_mask(seeds, b))


def test_dropblock_rate_ramps_and_its_counter_is_checkpointed():
    assert dropblock_gamma(0.1, 0, 5, 5) == 0.0
    half = 1 - max(1 - 0.1 / 40000 * 20000, 0.9)
    assert dropblock_gamma(0.1, 20000, 5, 2) == pytest.approx(half / 4 * 25 / 16)
    assert dropblock_gamma(0.1, 10**6, 5, 2) == pytest.approx(0.1 / 4 * 25 / 16)
    net = ResNet12(3, channels=(4, 4, 4, 4), dropblock_size=2).train()
    net(torch.rand(2, 3, 32, 32))
    assert all(int(v) == 1 for k, v in net.state_dict().items() if k.endswith("forward_calls"))


@pytest.mark.parametrize("build", [lambda **kw: R2D2Encoder(1, (64, 64, 64, 64), **kw), lambda **kw: Conv4(1, 64, **kw)],
                         ids=["R2D2Encoder", "Conv4"])
def test_batchnorm_scales_can_start_as_pytorch_up_to_1_1_started_them(build):
    """PyTorch <= 1.1's ``_BatchNorm.reset_parameters``: ``weight.uniform_()`` (U[0, 1)), ``bias.zero_()``; 1.2+: ones."""
    torch.manual_seed(0)
    bns = [m for m in build(bn_weight_init="uniform").modules() if isinstance(m, torch.nn.BatchNorm2d)]
    scales = torch.cat([m.weight.detach() for m in bns])
    assert len(scales) == 256 and scales.min() >= 0 and scales.max() < 1 and abs(float(scales.mean()) - 0.5) < 0.07
    assert all(float(m.bias.detach().abs().max()) == 0 for m in bns)
    default = [m.weight for m in build().modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert all(bool((w == 1).all()) for w in default)
    with pytest.raises(ValueError, match="BatchNorm weight initialisation"):
        build(bn_weight_init="normal")


@pytest.mark.parametrize("form", ["r2d2", "metaoptnet"])
def test_r2d2_encoder_channels_last_on_cpu_gives_the_nchw_features_and_gradients(form):
    """The CPU path computes in NHWC; oracle: the same blocks on a contiguous NCHW batch, composed by hand. In eval mode,
    so that the metaoptnet form's fixed dropout draws no masks (BatchNorm then uses its running statistics)."""
    torch.manual_seed(0)
    net = R2D2Encoder(1, (8, 16, 16, 8), form=form, drop=0.0, bn_weight_init="uniform").eval()
    x = torch.rand(6, 1, 28, 28)
    fast = net(x)
    (fast ** 2).sum().backward()
    fast_grads = [p.grad.clone() for p in net.parameters()]
    net.zero_grad()
    b3 = net.block3(net.block2(net.block1(x.contiguous())))
    b4 = net.block4(b3)
    if form == "r2d2":
        b3 = net.pool3(b3)
    slow = torch.cat([b3.flatten(1), b4.flatten(1)], dim=1)
    (slow ** 2).sum().backward()
    assert fast.shape == slow.shape and torch.allclose(fast, slow, atol=1e-5)
    assert all(torch.allclose(a, p.grad, rtol=1e-4, atol=1e-5) for a, p in zip(fast_grads, net.parameters()))
