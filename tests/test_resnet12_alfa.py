"""ALFA's ResNet-12 (methods.resnet12_alfa) against stock torch layers, its parameters counted by hand, its feature sizes,
and its use by the inner loop (BatchNorm left out; the generator's 18 layers, as ALFA's code counts them)."""

import torch
from torch import nn

from metarepro.inner import cross_entropy_per_task
from methods.alfa import ALFA
from methods.maml import MAML
from methods.resnet12_alfa import ALFAResNet12


def test_parameters_counted_by_hand():
    total, c_in = 0, 3
    for c in (64, 128, 256, 512):  # three 3x3 convs, a 1x1 shortcut, four BatchNorms (scale and offset), no conv biases
        total += c_in * c * 9 + 2 * c * c * 9 + c_in * c + 4 * 2 * c
        c_in = c
    assert total == 7_996_800
    net = ALFAResNet12(3, 5)
    assert sum(p.numel() for p in net.parameters()) == total + 512 * 5 + 5 == 7_999_365
    assert len(net.norm_names) == 4 * 4 * 2


def test_feature_maps_at_84_px_are_42_21_11_11():
    net = ALFAResNet12(3, 5, widths=(4, 4, 4, 4))
    h, sizes = torch.zeros(2, 3, 84, 84), []
    for block in net.blocks:
        h = block(h)
        sizes.append(h.shape[-1])
    assert sizes == [42, 21, 11, 11] and net.features(torch.zeros(2, 3, 84, 84)).shape == (2, 4)


def _stock_block(block, pad):
    """One block from stock layers with ``block``'s weights copied in."""
    def conv(src, k):
        layer = nn.Conv2d(src.in_channels, src.out_channels, k, padding=k // 2, bias=False).double()
        layer.weight.data.copy_(src.weight)
        return layer

    def bn(src):
        layer = nn.BatchNorm2d(src.weight.numel(), track_running_stats=False).double()
        layer.weight.data.copy_(src.weight), layer.bias.data.copy_(src.bias)
        return layer

    main = nn.Sequential(conv(block.conv1, 3), bn(block.bn1), nn.ReLU(), conv(block.conv2, 3), bn(block.bn2), nn.ReLU(),
                         conv(block.conv3, 3), bn(block.bn3))
    shortcut = nn.Sequential(conv(block.shortcut, 1), bn(block.bn_shortcut))
    pool = nn.Identity() if pad is None else nn.MaxPool2d(2, 2, padding=pad)
    return lambda x: pool(torch.relu(main(x) + shortcut(x)))


def test_forward_equals_stock_layers():
    torch.manual_seed(0)
    net = ALFAResNet12(3, 4, widths=(4, 6, 8, 8)).double()
    with torch.no_grad():  # scale and offset away from 1 and 0
        for n, p in net.named_parameters():
            if ".bn" in n:
                p.add_(0.3 * torch.randn_like(p))
    x = torch.randn(5, 3, 30, 30, dtype=torch.float64)
    h = x
    for block, pad in zip(net.blocks, (0, 0, 1, None)):
        h = _stock_block(block, pad)(h)
    want = h.mean((2, 3)) @ net.head.weight.T + net.head.bias
    torch.testing.assert_close(net(x), want, rtol=1e-12, atol=1e-12)


def test_the_inner_loop_adapts_every_layer_but_batchnorm_and_alfa_counts_18_layers():
    torch.manual_seed(1)
    net = ALFAResNet12(3, 5, widths=(4, 4, 4, 4))
    maml = MAML(net, cross_entropy_per_task, 0.5, 1, frozen=net.norm_names)
    x, y = torch.randn(2, 10, 3, 20, 20), torch.arange(5).repeat(2).expand(2, -1)
    adapted = maml.adapt(x, y)
    for n, p in net.named_parameters():
        moved = not torch.equal(adapted.params[n][0], p.detach())
        assert moved == (n not in net.norm_names), n
    alfa = ALFA(ALFAResNet12(3, 5, widths=(4, 4, 4, 4)), cross_entropy_per_task, 0.01, 5, form="code", generator_layers=2,
                frozen=net.norm_names)
    assert len(alfa.names) == 18 and alfa.generator[0].in_features == 36  # per block 3 convs + shortcut, the head's 2
