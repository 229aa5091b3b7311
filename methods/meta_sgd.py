"""Meta-SGD: learning to learn quickly (Li, Zhou, Chen & Li, 2017).

MAML with a meta-learned step size for every parameter element. Small on
purpose: the README's "add your own method" example is this file.
"""

import torch
from torch import nn

from metarepro.inner import InnerLoop, adapt_tasks


class MetaSGD(nn.Module):
    def __init__(self, backbone, task_loss, inner_lr, inner_steps):
        super().__init__()
        self.backbone, self.task_loss, self.steps = backbone, task_loss, inner_steps
        self.lr = nn.ParameterDict({n.replace(".", "-"): nn.Parameter(torch.full_like(p, inner_lr))
                                    for n, p in backbone.named_parameters()})

    def adapt(self, batch, first_order=False):
        rates = {n: self.lr[n.replace(".", "-")] for n, _ in self.backbone.named_parameters()}
        loop = InnerLoop(steps=self.steps, lr=rates, first_order=first_order)
        return adapt_tasks(self.backbone, dict(self.backbone.named_parameters()),
                           batch.support_x, batch.support_y, self.task_loss, loop)

    def outer_loss(self, batch):                       # batch: Episode with a leading task dim
        return self.task_loss(self.adapt(batch).predict(batch.query_x), batch.query_y).mean()

    def score(self, batch):                            # per-task test metric, (T,)
        with torch.enable_grad():
            pred = self.adapt(batch, first_order=True).predict(batch.query_x)
        return self.task_loss(pred.detach(), batch.query_y)
