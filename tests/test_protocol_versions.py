"""What counts as a numerics change: each method, backbone and the trainer against its golden output.

A record stays current while its configuration hashes as its cell's does *and* the protocol versions its training
segments name are the code's (:func:`metarepro.trainer.protocol_versions`; ``PROTOCOL_VERSION`` of a class of the
``methods`` package, ``TRAINER_PROTOCOL_VERSION``). A refactor or a file move keeps every record current; a change of
what a method computes must bump its version in the same commit, or this test fails:

* each probe trains a small float64 model for a few iterations through :func:`metarepro.trainer.train` on fixed
  synthetic data and compares its losses and a fixed random projection of its final weights with
  ``tests/golden/protocol_outputs.json`` to 1e-6 (relative, float64: far above summation-order noise, ~1e-15, far below
  any change of the maths);
* the golden entry names the versions it was made under: output changed, versions not -> fail ("bump it");
  versions changed, golden not regenerated -> fail ("regenerate").

Regenerate after a deliberate bump with ``python -m tests.test_protocol_versions --update`` (it refuses to rewrite an
entry whose output changed while its versions did not).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from metarepro.episodes import SINUSOID_METASGD, Episode
from metarepro.inner import cross_entropy_per_task, mse_per_task
from metarepro.trainer import protocol_versions, train

GOLDEN = Path(__file__).parent / "golden" / "protocol_outputs.json"
TOLERANCE = 1e-6
ITERATIONS = 3


def _images(seed: int, tasks: int, ways: int, shots: int, queries: int, size: int = 28) -> Episode:
    """Fixed random float64 image episodes ``(tasks, ways*shots, 1, size, size)`` with labels 0..ways-1."""
    g = torch.Generator().manual_seed(seed)

    def part(n):
        x = torch.rand(tasks, ways * n, 1, size, size, generator=g, dtype=torch.float64)
        y = torch.arange(ways).repeat_interleave(n).expand(tasks, -1).clone()
        return x, y

    (sx, sy), (qx, qy) = part(shots), part(queries)
    return Episode(sx, sy, qx, qy)


def _labelled(seed: int):
    """A fixed classical minibatch: 6 float64 images, labels over 6 training classes."""
    from methods.classical import LabelledBatch

    g = torch.Generator().manual_seed(seed)
    return LabelledBatch(torch.rand(6, 1, 28, 28, generator=g, dtype=torch.float64), torch.arange(6))


def _labelled_pairs(seed: int):
    """A fixed minibatch of two float64 images for each of 3 training classes (the regularisers need pairs)."""
    from methods.classical import LabelledBatch

    g = torch.Generator().manual_seed(seed)
    return LabelledBatch(torch.rand(6, 1, 28, 28, generator=g, dtype=torch.float64), torch.tensor([0, 0, 1, 1, 2, 2]))


def _one(batch: Episode) -> Episode:
    return Episode(batch.support_x[0], batch.support_y[0], batch.query_x[0], batch.query_y[0])


def _sinusoid(index: int) -> Episode:
    batch = SINUSOID_METASGD.train_batch(0, index, 4, 5, 5)
    return Episode(*(t.double() for t in (batch.support_x, batch.support_y, batch.query_x, batch.query_y)))


def _mlp():
    from methods.backbones import MLP

    return MLP([1, 8, 8, 1], init="torch")


def _convnet(ways=3):
    from methods.backbones import ConvNet

    return ConvNet(1, ways, 4, pool=False, features="mean", bn_scale=False, head_init="normal")


def _conv4():
    from methods.backbones import Conv4

    return Conv4(1, 4, pool=True)


class _WithTestTimeHead(torch.nn.Module):
    """A probe for a head that is not trained (the linear fine-tuning head): a trainable prototype model whose reported
    loss adds the test-time head's query cross-entropy as a constant, so the golden loss curve holds that head's
    numerics too."""

    def __init__(self, trained: torch.nn.Module, test_time_head: torch.nn.Module):
        super().__init__()
        self.trained, self.test_time_head = trained, test_time_head

    def outer_loss(self, batch: Episode) -> torch.Tensor:
        import torch.nn.functional as F

        from methods.finetune_head import FineTuneHead

        features, ways = self.trained.features, int(batch.support_y.max()) + 1
        if isinstance(self.test_time_head, FineTuneHead):  # fine-tunes the backbone itself, on images
            logits = self.test_time_head(self.trained.backbone, batch.support_x, batch.support_y, batch.query_x, ways)
        else:
            logits = self.test_time_head(features(batch.support_x), batch.support_y, features(batch.query_x), ways)
        return self.trained.outer_loss(batch) + F.cross_entropy(logits.flatten(0, 1), batch.query_y.flatten()).detach()


def _probe_models() -> dict:
    """name -> (model factory, batch of iteration i, optimizer factory); every factory seeded by the caller."""
    from methods.alfa import ALFA
    from methods.classical import ClassicalClassifier
    from methods.feature_clustering import RegularizedClassifier
    from methods.finetune_baseline import FinetuneBaseline
    from methods.finetune_head import FineTuneHead
    from methods.head_classifier import HeadClassifier, ProtoHead
    from methods.hyper_representation import HyperRepresentation
    from methods.l2f import L2F
    from methods.l2g import L2G, TaskPairs
    from methods.linear_head import LinearHead
    from methods.maml import MAML
    from methods.maml_metric import MAMLMetric
    from methods.maml_plus_plus import MAMLPlusPlus
    from methods.matchingnet import MatchingNet
    from methods.meta_sgd import MetaSGD
    from methods.protonet import ProtoNet
    from methods.r2d2_encoder import R2D2Encoder
    from methods.regularized_maml import RegularizedMAML
    from methods.relationnet import RelationNet
    from methods.reptile import Reptile
    from methods.resnet12 import ResNet12
    from methods.resnet12_alfa import ALFAResNet12
    from methods.ridge_head import RidgeHead
    from methods.svm_head import MetaOptNetSVM
    from methods.weight_clustering import WeightClusteredReptile

    adam = lambda m: torch.optim.Adam([p for p in m.parameters() if p.requires_grad], lr=1e-3)  # noqa: E731
    sgd = lambda m: torch.optim.SGD(m.parameters(), lr=0.5)  # noqa: E731
    images = lambda i, tasks=2, ways=3, shots=1, queries=2: _images(100 + i, tasks, ways, shots, queries)  # noqa: E731
    return {
        "trainer+MAML(MLP) sinusoid": (lambda: MAML(_mlp(), mse_per_task, 0.01, 2), _sinusoid, adam),
        "first-order MAML(MLP)": (lambda: MAML(_mlp(), mse_per_task, 0.01, 2, first_order=True), _sinusoid, adam),
        "ALFA paper": (lambda: ALFA(_mlp(), mse_per_task, 0.01, 2, form="paper"), _sinusoid, adam),
        "ALFA code": (lambda: ALFA(_mlp(), mse_per_task, 0.01, 2, form="code", generator_layers=2), _sinusoid, adam),
        "ALFA bounded": (lambda: ALFA(_mlp(), mse_per_task, 0.01, 2, form="bounded"), _sinusoid, adam),
        "ALFA ablation (weights in, alpha adaptive per step, beta fixed per layer)": (
            lambda: ALFA(_mlp(), mse_per_task, 0.01, 2, form="code", generator_input="weights", alpha="adaptive-step", beta="fixed-layer"),
            _sinusoid, adam),
        "L2F(MLP)": (lambda: L2F(_mlp(), mse_per_task, 0.01, 2), _sinusoid, adam),
        "MAML(ALFAResNet12), BatchNorm frozen": (
            lambda: (lambda net: MAML(net, cross_entropy_per_task, 0.1, 1, frozen=net.norm_names))(ALFAResNet12(1, 3, (2, 3, 4, 4))),
            lambda i: images(i, tasks=2, shots=1), adam),
        "ALFA+L2F(ConvNet), BatchNorm frozen": (lambda: ALFA(_convnet(), cross_entropy_per_task, 0.05, 2, form="code", generator_layers=2,
                                                             frozen=tuple(f"norms.{i}.bias" for i in range(4)), attenuate=True),
                                                lambda i: images(i, tasks=2, shots=1), adam),
        "MAML++(ConvNet), multi-step loss for the first 2 one-iteration epochs": (
            lambda: MAMLPlusPlus(_convnet(), cross_entropy_per_task, 0.05, 2, msl_epochs=2, epoch_length=1), images, adam),
        "Meta-SGD": (lambda: MetaSGD(_mlp(), mse_per_task, 0.01, 2), _sinusoid, adam),
        "regularized MAML": (lambda: RegularizedMAML(_mlp(), mse_per_task, 0.01, 2, gamma=0.5), _sinusoid, adam),
        "MAML(ConvNet)": (lambda: MAML(_convnet(), cross_entropy_per_task, 0.4, 1, frozen=tuple(f"norms.{i}.bias" for i in range(4))),
                          images, adam),  # finn2017-table1: offset-only BatchNorm with the offsets not adapted
        "Reptile(ConvNet)": (lambda: Reptile(_convnet(), 1e-3, 3, 2, 3), lambda i: images(i, tasks=2, shots=2), sgd),
        "ProtoNet(Conv4)": (lambda: ProtoNet(_conv4()), lambda i: _one(images(i)), adam),
        "MatchingNet(Conv4, FCE)": (lambda: MatchingNet(_conv4(), fce=True, dim=4), lambda i: _one(images(i)), adam),
        "RelationNet": (lambda: RelationNet(1, 28, filters=4), lambda i: _one(images(i)), adam),
        "L2G(ProtoNet)": (lambda: L2G(ProtoNet(_conv4()), 1e-2),
                          lambda i: TaskPairs([_one(images(2 * i))], [_one(images(2 * i + 1))]), adam),
        "MAML+ProtoNet": (lambda: MAMLMetric(ProtoNet(_conv4()), 1e-2), images, adam),
        "HyperRepresentation": (lambda: HyperRepresentation(_conv4(), steps=2), images, adam),
        "HeadClassifier(Conv4)+SVM": (lambda: HeadClassifier(_conv4(), MetaOptNetSVM(double_precision=True), label_smoothing=0.1),
                                      lambda i: images(i, shots=2), adam),
        "HeadClassifier(Conv4)+ridge": (lambda: HeadClassifier(_conv4(), RidgeHead()), lambda i: images(i, shots=2), adam),
        "HeadClassifier(Conv4)+ProtoHead": (lambda: HeadClassifier(_conv4(), ProtoHead()), images, adam),
        "R2D2Encoder(r2d2)+ProtoHead": (lambda: HeadClassifier(R2D2Encoder(1, (4, 4, 4, 4), form="r2d2"), ProtoHead()), images, adam),
        "R2D2Encoder(metaoptnet)+ridge": (lambda: HeadClassifier(R2D2Encoder(1, (4, 4, 4, 4), form="metaoptnet"), RidgeHead(form="metaoptnet")),
                                          lambda i: images(i, shots=2), adam),
        "ClassicalClassifier(Conv4)": (lambda: ClassicalClassifier(_conv4(), 4, 6), lambda i: _labelled(200 + i), sgd),
        "LinearHead on HeadClassifier(Conv4)": (lambda: _WithTestTimeHead(HeadClassifier(_conv4(), ProtoHead()), LinearHead()),
                                                lambda i: images(i, shots=2), adam),
        "FineTuneHead on HeadClassifier(Conv4)": (lambda: _WithTestTimeHead(HeadClassifier(_conv4(), ProtoHead()), FineTuneHead(3, 0.1)),
                                                  images, adam),
        "WeightClusteredReptile(ConvNet)": (lambda: WeightClusteredReptile(_convnet(), 0.1, 3, alpha=0.5),
                                            lambda i: images(i, tasks=2, shots=2), sgd),
        "RegularizedClassifier(Conv4, R_FC)": (lambda: RegularizedClassifier(_conv4(), 4, 6, regularizer="fc", coefficient=0.5),
                                               lambda i: _labelled_pairs(300 + i), sgd),
        "FinetuneBaseline(ConvNet)": (lambda: FinetuneBaseline(_convnet, 6, cross_entropy_per_task, 0.01, 2), lambda i: _labelled(200 + i),
                                      adam),
        "ResNet12+ProtoHead": (lambda: HeadClassifier(ResNet12(1, (4, 4, 4, 4), dropblock_size=2), ProtoHead()), images, adam),
    }


def run_probe(name: str, tmp: Path) -> tuple[dict[str, int], list[float]]:
    """``(protocol versions, output)``: the losses of ``ITERATIONS`` trainer iterations, then a fixed 16-number random
    projection of the final weights (and buffers), all float64."""
    make, batch, optimizer = _probe_models()[name]
    torch.manual_seed(0)
    model = make().double()
    state = train(model, optimizer(model), batch, ITERATIONS, tmp / "probe.pt", "probe", checkpoint_every=ITERATIONS, log_every=1,
                  progress=False)
    weights = torch.cat([t.detach().double().flatten() for t in model.state_dict().values() if t.is_floating_point()])
    projection = torch.randn(16, weights.numel(), generator=torch.Generator().manual_seed(1), dtype=torch.float64) @ weights
    return protocol_versions(model), [loss for _, loss in state.loss_curve] + projection.tolist()


def _golden() -> dict:
    return json.loads(GOLDEN.read_text()) if GOLDEN.exists() else {}


@pytest.mark.parametrize("name", sorted(_probe_models()))
def test_output_changes_only_with_a_protocol_version(name, tmp_path):
    golden = _golden().get(name)
    assert golden is not None, f"no golden output for {name!r}: run `python -m tests.test_protocol_versions --update`"
    versions, output = run_probe(name, tmp_path)
    if versions != golden["versions"]:
        pytest.fail(f"{name}: protocol versions {versions}, golden made under {golden['versions']}: regenerate it in this commit "
                    "(`python -m tests.test_protocol_versions --update`)")
    expected = np.asarray(golden["output"])
    assert np.allclose(output, expected, rtol=TOLERANCE, atol=TOLERANCE * np.abs(expected).max()), (
        f"{name}: the output changed under the same protocol versions {versions}: bump PROTOCOL_VERSION of the class whose "
        "numerics changed (or TRAINER_PROTOCOL_VERSION), then regenerate the golden output")


def test_every_class_of_the_methods_package_is_probed():
    """A method added without a probe would change unguarded: every nn.Module class in methods/ appears in some probe."""
    import importlib
    import pkgutil

    import methods

    probed = set()
    for make, _, _ in _probe_models().values():
        probed |= set(protocol_versions(make()))
    classes = set()
    for info in pkgutil.iter_modules(methods.__path__):
        module = importlib.import_module(f"methods.{info.name}")
        classes |= {obj.__name__ for obj in vars(module).values()
                    if isinstance(obj, type) and issubclass(obj, torch.nn.Module) and obj.__module__ == module.__name__}
    assert classes - probed == set(), f"classes with no golden probe: {sorted(classes - probed)}"


def update(force: bool = False) -> int:
    """Regenerate the golden file; an entry whose output changed while its versions did not is kept unless ``force``."""
    import tempfile

    golden, refused = _golden(), []
    for name in sorted(_probe_models()):
        with tempfile.TemporaryDirectory() as tmp:
            versions, output = run_probe(name, Path(tmp))
        old = golden.get(name)
        if old is not None and old["versions"] == versions:
            if np.allclose(output, old["output"], rtol=TOLERANCE, atol=TOLERANCE * np.abs(old["output"]).max()):
                continue  # unchanged: the committed numbers stay, not rewritten with their float noise
            if not force:
                refused.append(name)
                continue
        golden[name] = {"versions": versions, "output": output}
    GOLDEN.parent.mkdir(exist_ok=True)
    GOLDEN.write_text(json.dumps(dict(sorted(golden.items())), indent=1) + "\n")
    for name in refused:
        print(f"refused {name!r}: its output changed but its protocol versions did not; bump the version first", file=sys.stderr)
    print(f"wrote {GOLDEN} ({len(golden)} probes)")
    return 1 if refused else 0


if __name__ == "__main__":
    torch.set_num_threads(1)
    sys.exit(update(force="--force" in sys.argv))
