"""A guard against a fault of torch's CPU LU factorisation under several intra-op threads.

With more than one thread, ``torch.linalg.lu_factor`` / ``lu_solve`` / ``solve`` / ``inv`` on CPU can return garbage
(pivots below 1 or beyond ``n``, non-finite factors, wrong solutions), print ``Intel oneMKL ERROR: Parameter 6 was
incorrect on entry to SLASWP`` or hang: several threads call MKL's ``getrf`` / ``getrs`` at once, whose row swaps
(``laswp``) are not safe to run concurrently (pytorch/pytorch#141358 and #142815, open; the proposed fix, PR #181570,
keeps large batched factorisations on one thread). Measured here with scratch scripts in session 13 (torch 2.13.0+cpu,
AMD EPYC, 2 threads, float32, ``randn`` matrices): batches of 8 are right at n <= 128, wrong at 129 and 160 to 375,
hang at 150; a single 1000 x 1000 matrix is wrong too; one thread is always right. ``tests/test_lapack.py`` holds the
guarded heads right at two of the wrong sizes (and fails without the guards). ``qpth`` factorises its KKT systems this way
(MetaOptNet's SVM head at 5-way 15-shot is a 375-variable QP), in its forward and its backward pass.

``one_thread()`` runs a block with one intra-op thread; ``call_one_threaded(fn, *inputs)`` runs ``fn`` and, when autograd
reaches it, its backward pass with one thread, so a solver whose backward factorises again is covered too. Cholesky
(``potrf``, no pivoting) is not affected: symmetric positive definite systems use it instead (``methods.ridge_head``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch


@contextmanager
def one_thread() -> Iterator[None]:
    """Run the block with one intra-op thread (restored after, also on an exception)."""
    threads = torch.get_num_threads()
    if threads > 1:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        if threads > 1:
            torch.set_num_threads(threads)


class _OneThreaded(torch.autograd.Function):
    """Forward and backward of ``fn`` under ``one_thread()``; ``fn``'s own graph is built inside and differentiated by
    ``torch.autograd.grad`` on the way back (first order only, as ``qpth`` supports)."""

    @staticmethod
    def forward(ctx, fn, *inputs):
        with one_thread(), torch.enable_grad():
            leaves = [x.detach().requires_grad_(x.requires_grad) for x in inputs]
            output = fn(*leaves)
        ctx.graph = (leaves, output)
        return output.detach()

    @staticmethod
    def backward(ctx, grad_output):
        leaves, output = ctx.graph
        wanted = [x for x in leaves if x.requires_grad]
        with one_thread():
            grads = iter(torch.autograd.grad(output, wanted, grad_output, allow_unused=True))
        del ctx.graph
        return (None, *[next(grads) if x.requires_grad else None for x in leaves])


def call_one_threaded(fn: Callable[..., torch.Tensor], *inputs: torch.Tensor) -> torch.Tensor:
    """``fn(*inputs)`` with its forward and backward passes on one intra-op thread when the inputs are on the CPU;
    unchanged on other devices (GPU solvers do not go through MKL)."""
    if inputs[0].device.type != "cpu":
        return fn(*inputs)
    if not (torch.is_grad_enabled() and any(x.requires_grad for x in inputs)):
        with one_thread():
            return fn(*inputs)
    return _OneThreaded.apply(fn, *inputs)
