"""Matching Networks for One Shot Learning (Vinyals, Blundell, Lillicrap, Kavukcuoglu & Wierstra, NeurIPS 2016).

A query's label distribution is an attention-weighted sum of the support
labels, ``P(y | x, S) = sum_i a(x, x_i) y_i`` (eq. 1), with ``a`` a softmax
over cosine similarities of the embedded query and support examples (eq. 2);
training minimises the query negative log-likelihood over episodes.

Full context embeddings (FCE, sec. 2.1.2 and appendix A.2), optional:

* ``g(x_i, S) = h_i_forward + h_i_backward + g'(x_i)``: a bidirectional LSTM
  over the embedded support set, with a skip connection;
* ``f(x, S) = attLSTM(f'(x), g(S), K)``: ``K`` read steps of an LSTM whose
  input is ``f'(x)``; ``h_k = h^_k + f'(x)``, ``r_k = sum_i softmax(h_{k-1}^T
  g(x_i)) g(x_i)``. The appendix feeds ``[h_{k-1}, r_{k-1}]`` as the state,
  which does not match the LSTM's hidden size; like the widely used
  re-implementations, the state here is ``h_{k-1} + r_{k-1}``.

Which variant the published baselines are: the "Matching Nets" rows of the
seed papers (mini-ImageNet 5-way 1/5-shot) come with the Meta-learner LSTM
row from Ravi & Larochelle (ICLR 2017, Table 1), whose Matching Networks
row is, to our knowledge, their re-run *with* FCE ("Matching Networks
FCE"); their paper is not among ``../shared/papers``, so this could not be
checked here. The two seed papers disagree on the 1-shot numbers: L2G's
Table 1 prints Matching Nets 43.56 +/- 0.84 and Meta-learn LSTM 43.44 +/-
0.77, Franceschi et al.'s Table 1 the two values the other way round (5-shot
55.31 and 60.60 agree). The suite shows those rows as cited baselines and
trains this method for its own comparisons.

Similarity (``similarity=``): eq. 2 says cosine, and ``"cosine"`` normalises both the query and the support
embedding, as written, so the logits of the attention softmax stay in [-1, 1]. Two widely used re-implementations
differ: Antoniou's TensorFlow code (github.com/AntreasAntoniou/MatchingNetworks, ``DistanceNetwork``) divides the
dot product by the *support* norm only, so the query's norm is a learned temperature (``"support-normalised"``);
Knagg's PyTorch code (github.com/oscarknagg/few-shot) normalises both and reports that it could not reach the
published Omniglot numbers with it (20-way 1-shot 75.6 against 93.8), but could with squared Euclidean distance.
In 1-shot episodes both forms rank the support examples alike (a query's norm scales every logit by the same
factor), so they differ only in what training learns.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from metarepro.episodes import Episode

SIMILARITIES = ("cosine", "support-normalised")


def cosine_attention(queries: torch.Tensor, support: torch.Tensor, eps: float = 1e-8, similarity: str = "cosine") -> torch.Tensor:
    """``a(x, x_i)``: softmax over the support of cosine similarities, ``(m, d), (n, d) -> (m, n)`` (eq. 2);
    ``similarity="support-normalised"``: ``x . x_i / |x_i|``, the query left unnormalised (module docstring)."""
    if similarity not in SIMILARITIES:
        raise ValueError(f"unknown similarity {similarity!r}; expected one of {SIMILARITIES}")
    if similarity == "cosine":
        queries = F.normalize(queries, dim=1, eps=eps)
    return torch.softmax(queries @ F.normalize(support, dim=1, eps=eps).T, dim=1)


def label_distribution(attention: torch.Tensor, support_y: torch.Tensor, ways: int) -> torch.Tensor:
    """``sum_i a(x, x_i) y_i`` with one-hot ``y_i``: ``(m, n) -> (m, ways)`` (eq. 1)."""
    return attention @ F.one_hot(support_y, ways).to(attention.dtype)


class MatchingNet(nn.Module):
    """Matching Networks over an embedding ``backbone: (n, C, H, W) -> (n, d)``; ``fce`` adds full context embeddings."""

    def __init__(self, backbone: nn.Module, fce: bool = False, dim: int | None = None, read_steps: int = 1,
                 similarity: str = "cosine"):
        super().__init__()
        if similarity not in SIMILARITIES:
            raise ValueError(f"unknown similarity {similarity!r}; expected one of {SIMILARITIES}")
        self.backbone, self.fce, self.read_steps, self.similarity = backbone, fce, read_steps, similarity
        if fce:
            if dim is None:
                raise ValueError("FCE needs the embedding dimension `dim`")
            self.support_lstm = nn.LSTM(dim, dim, batch_first=True, bidirectional=True)
            self.query_lstm = nn.LSTMCell(dim, dim)

    def contextual_support(self, z: torch.Tensor) -> torch.Tensor:
        """``g(x_i, S)``: ``(n, d) -> (n, d)``."""
        out, _ = self.support_lstm(z.unsqueeze(0))
        forward, backward = out[0].chunk(2, dim=1)
        return forward + backward + z

    def contextual_queries(self, q: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        """``f(x, S)``: ``K`` attention reads over ``g (n, d)`` for queries ``(m, d)``."""
        h, c = torch.zeros_like(q), torch.zeros_like(q)
        readout = torch.zeros_like(q)
        for _ in range(self.read_steps):
            h_hat, c = self.query_lstm(q, (h + readout, c))
            h = h_hat + q
            readout = torch.softmax(h @ g.T, dim=1) @ g
        return h

    def episode_probabilities(self, episode: Episode) -> torch.Tensor:
        """``P(y | x, S)`` of each query, ``(n_query, ways)``; support and query embedded in one pass."""
        ways, n = int(episode.support_y.max()) + 1, len(episode.support_y)
        z = self.backbone(torch.cat([episode.support_x, episode.query_x]))
        support, queries = z[:n], z[n:]
        if self.fce:
            support = self.contextual_support(support)
            queries = self.contextual_queries(queries, support)
        return label_distribution(cosine_attention(queries, support, similarity=self.similarity), episode.support_y, ways)

    def forward(self, episode: Episode) -> torch.Tensor:
        """Query negative log-likelihood of one episode."""
        return F.nll_loss(torch.log(self.episode_probabilities(episode).clamp_min(1e-12)), episode.query_y)

    def outer_loss(self, batch: Episode) -> torch.Tensor:
        return torch.stack([self(e) for e in batch.image_tasks()]).mean()

    @torch.no_grad()
    def score(self, batch: Episode) -> torch.Tensor:
        return torch.stack([(self.episode_probabilities(e).argmax(1) == e.query_y).float().mean() for e in batch.image_tasks()])
