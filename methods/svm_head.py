"""MetaOptNet's SVM head (Lee, Maji, Ravichandran & Soatto, "Meta-Learning with Differentiable Convex Optimization",
CVPR 2019): a Crammer-Singer multi-class SVM fit on each episode's support features, differentiable through its
solution, batched over the episodes of a meta-batch.

The dual (Lee et al. eq. 9, in liblinear's notation as the authors' ``MetaOptNetHead_SVM_CS`` writes it), one
``alpha (n_support, ways)`` per episode::

    min_alpha  1/2 sum_m ||w_m||^2 - sum_i alpha_i^{y_i}      w_m = sum_i alpha_i^m f(x_i)
    s.t.       alpha_i^m <= C [m = y_i],   sum_m alpha_i^m = 0

as a QP over ``z = vec(alpha)`` (row-major: ``z[i * ways + m] = alpha_i^m``): ``Q = kron(K, I_ways) + jitter * I`` with
``K = S S^T`` the support Gram matrix, ``p = -vec(onehot)``, ``z <= C vec(onehot)``, ``kron(I_n, 1^T) z = 0``.
Without the jitter it is exactly the dual of the Crammer-Singer primal that scikit-learn's
``LinearSVC(multi_class="crammer_singer", fit_intercept=False)`` solves (tests/test_svm_head.py holds the predictions
to it). A query's logits are ``w_m . f(q) = sum_i alpha_i^m <f(x_i), f(q)>``, times a learnable scale.

Paper vs the authors' code (kjunelee/MetaOptNet, ``models/classification_heads.py``, ``train.py``), each a choice here:

* ``C = 0.1`` (both).
* QP iterations: the paper says 3, the code calls ``QPFunction(maxIter=15)`` in training and test. Default 15 (the code).
* ``+ 1.0 * I`` on the block kernel ("to avoid PSD error"): the code's, so ``jitter = 1.0`` by default. It changes the
  solution (a ridge term on alpha), not just conditioning; ``jitter = 0`` is the paper's problem (needs ``K`` full rank
  for ``qpth``).
* float32 unless ``double_precision`` (the code's default float32): at 3 iterations float32 is off by up to 1e-2
  (REFERENCE.md); 15 iterations in float64 match cvxpy to ~1e-11.
* The logits' learnable scale, initialised at 1 (``ClassificationHead(enable_scale=True)``); not in the paper.

Engines: ``qpth`` (the authors' solver, a batched primal-dual interior point method, differentiated through its KKT
system) and ``cvxpylayers`` (an independent second implementation: the same QP written as
``1/2 ||S^T alpha||^2 + jitter/2 ||alpha||^2 - <Y, alpha>`` in cvxpy, solved and differentiated by diffcp). Its default
backward (an iterative LSQR solve) is ~3% off on this problem, so gradients use ``mode="dense"``; that mode fails
without gradients, where the default mode is used. Both are held to each other and to cvxpy in float64 in the tests.

On the CPU, ``qpth`` runs (forward and backward) on one intra-op thread: torch's LU is wrong with several threads from
about 129 unknowns (``metarepro.lapack``), and 5-way 15-shot, MetaOptNet's training episodes, is a 375-variable QP. The
QP is 1-2 % of a training step (``tests/timing/test_unraveling.py``), so the step keeps its threads elsewhere.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from torch import nn

from metarepro.lapack import call_one_threaded

ENGINES = ("qpth", "cvxpylayers")


def crammer_singer_qp(support: torch.Tensor, labels: torch.Tensor, ways: int, C: float = 0.1, jitter: float = 1.0):
    """The dual as a batched QP ``(Q, p, G, h, A, b)`` in qpth's form ``min 1/2 z^T Q z + p^T z, G z <= h, A z = b``.

    ``support (B, n, d)``, ``labels (B, n)`` in ``0..ways-1`` -> ``Q (B, n*ways, n*ways)``, ``p (B, n*ways)``,
    ``G (B, n*ways, n*ways)``, ``h (B, n*ways)``, ``A (B, n, n*ways)``, ``b (B, n)``. Only ``Q`` depends on the features
    (and carries their gradient).
    """
    tasks, n, _ = support.shape
    kernel = support @ support.transpose(1, 2)  # (B, n, n)
    eye_ways = torch.eye(ways, dtype=support.dtype, device=support.device)
    Q = torch.einsum("bij,mk->bimjk", kernel, eye_ways).reshape(tasks, n * ways, n * ways)  # kron(K, I_ways)
    Q = Q + jitter * torch.eye(n * ways, dtype=support.dtype, device=support.device)
    onehot = F.one_hot(labels, ways).to(support.dtype).reshape(tasks, n * ways)
    G = torch.eye(n * ways, dtype=support.dtype, device=support.device).expand(tasks, -1, -1)
    A = torch.kron(torch.eye(n, dtype=support.dtype, device=support.device),
                   torch.ones(1, ways, dtype=support.dtype, device=support.device)).expand(tasks, -1, -1)
    b = torch.zeros(tasks, n, dtype=support.dtype, device=support.device)
    return Q, -onehot, G, C * onehot, A, b


def solve_qpth(support: torch.Tensor, labels: torch.Tensor, ways: int, C: float = 0.1, jitter: float = 1.0,
               iterations: int = 15) -> torch.Tensor:
    """``alpha (B, n, ways)`` by qpth's batched interior point method, as the authors call it (``QPFunction(maxIter)``,
    constant terms detached); differentiable in ``support``."""
    try:
        from qpth.qp import QPFunction
    except ModuleNotFoundError:
        raise ModuleNotFoundError("the SVM head's qpth engine needs qpth: pip install -e '.[qp]' (on Python 3.13+: "
                                  "pip install --no-deps qpth==0.0.18), or use engine='cvxpylayers'") from None

    Q, p, G, h, A, b = crammer_singer_qp(support, labels, ways, C, jitter)
    qp = QPFunction(verbose=False, maxIter=iterations)
    z = call_one_threaded(lambda q: qp(q, p.detach(), G.detach(), h.detach(), A.detach(), b.detach()), Q)
    return z.reshape(support.shape[0], support.shape[1], ways)


@functools.lru_cache(maxsize=32)
def _cvxpy_layer(n: int, d: int, ways: int, C: float, jitter: float):
    import cvxpy as cp
    from cvxpylayers.torch import CvxpyLayer

    features, onehot = cp.Parameter((n, d)), cp.Parameter((n, ways))
    alpha = cp.Variable((n, ways))
    objective = 0.5 * cp.sum_squares(features.T @ alpha) + 0.5 * jitter * cp.sum_squares(alpha) - cp.sum(cp.multiply(onehot, alpha))
    problem = cp.Problem(cp.Minimize(objective), [alpha <= C * onehot, cp.sum(alpha, axis=1) == 0])
    assert problem.is_dpp()
    return CvxpyLayer(problem, parameters=[features, onehot], variables=[alpha])


def solve_cvxpylayers(support: torch.Tensor, labels: torch.Tensor, ways: int, C: float = 0.1, jitter: float = 1.0,
                      tolerance: float = 1e-9) -> torch.Tensor:
    """``alpha (B, n, ways)`` by cvxpylayers, solved in float64 by SCS to ``tolerance`` (absolute and relative; SCS's
    default 1e-4-ish stopping leaves the solution ~2e-5 off cvxpy's), returned in ``support``'s dtype."""
    tasks, n, d = support.shape
    layer = _cvxpy_layer(n, d, ways, float(C), float(jitter))
    onehot = F.one_hot(labels, ways).to(torch.float64)
    args = {"eps_abs": tolerance, "eps_rel": tolerance}
    if torch.is_grad_enabled() and support.requires_grad:
        args["mode"] = "dense"  # the default LSQR backward is ~3% off here; dense fails without gradients
    (alpha,) = layer(support.double(), onehot, solver_args=args)
    return alpha.to(support.dtype)


def svm_logits(alpha: torch.Tensor, support: torch.Tensor, query: torch.Tensor) -> torch.Tensor:
    """``w_m . f(q) = sum_i alpha_i^m <f(x_i), f(q)>``: ``alpha (B, n, ways)``, ``support (B, n, d)``, ``query (B, q, d)``
    -> ``(B, q, ways)``."""
    return torch.einsum("bnm,bnq->bqm", alpha, support @ query.transpose(1, 2))


class MetaOptNetSVM(nn.Module):
    """The head: support and query features in, query logits out (module docstring for every default's source)."""

    PROTOCOL_VERSION = 1

    def __init__(self, C: float = 0.1, iterations: int = 15, jitter: float = 1.0, engine: str = "qpth",
                 double_precision: bool = False, learn_scale: bool = True):
        super().__init__()
        if engine not in ENGINES:
            raise ValueError(f"unknown SVM engine {engine!r}; choose one of {ENGINES}")
        self.C, self.iterations, self.jitter, self.engine, self.double_precision = C, iterations, jitter, engine, double_precision
        self.scale = nn.Parameter(torch.ones(1), requires_grad=learn_scale)

    def solve(self, support: torch.Tensor, labels: torch.Tensor, ways: int) -> torch.Tensor:
        """``alpha (B, n, ways)`` of each episode's dual (the adapted state; nothing is stored)."""
        support = support.double() if self.double_precision else support.float()
        if self.engine == "qpth":
            return solve_qpth(support, labels, ways, self.C, self.jitter, self.iterations)
        return solve_cvxpylayers(support, labels, ways, self.C, self.jitter)

    def forward(self, support: torch.Tensor, labels: torch.Tensor, query: torch.Tensor, ways: int) -> torch.Tensor:
        """``support (B, n, d)``, ``labels (B, n)``, ``query (B, q, d)`` -> logits ``(B, q, ways)`` (float32 as the code
        computes them; float64 with ``double_precision``)."""
        dtype = torch.float64 if self.double_precision else torch.float32
        alpha = self.solve(support, labels, ways)
        return self.scale.to(dtype) * svm_logits(alpha.to(dtype), support.to(dtype), query.to(dtype))
