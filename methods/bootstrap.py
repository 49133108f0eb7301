"""``bootstrap``: bootstrapping with the teacher's prediction as the target (Reed, Lee,
Anguelov, Szegedy, Erhan, Rabinovich, "Training Deep Neural Networks on Noisy Labels with
Bootstrapping", ICLR 2015 workshop, arXiv 1412.6596). The paper released no code: this
follows its soft and hard bootstrapping objectives, with the teacher's prediction in place
of the model's own q.

    p    = mean_m softmax(t_m)                       (teachers at temperature 1)
    soft: target = beta * onehot(y) + (1 - beta) * p
    hard: target = beta * onehot(y) + (1 - beta) * onehot(argmax_c p_c)
    loss = mean_i -sum_c target_ic * log softmax(s_i)_c

The target is a constant (the teachers get no gradient); in the paper q is the model's own
prediction, and its soft loss is CE plus (1 - beta) x the prediction's entropy.
Defaults (beta null): 0.95 for soft, 0.8 for hard, the paper's values (chosen on MNIST; it
has no CIFAR-100 experiment). Several teachers: the mean of their probabilities (hard: the
argmax of that mean) under protocol suite; protocol authors refuses M > 1 (the target
would not sum to 1 under its each-teacher-full-weight convention).
"""

import torch
import torch.nn.functional as F

from benchmark.core.errors import UserError

from .base import Method, register_method

#: Reed et al. 2015, chosen in their MNIST experiment: beta = 0.95 soft, 0.8 hard
PAPER_BETA = {"soft": 0.95, "hard": 0.8}


def refuse_several_under_authors(name: str, ctx) -> None:
    """A target mixed from the label and the teachers: one distribution only under suite."""
    if ctx.protocol != "suite" and ctx.n_teachers > 1:
        raise UserError(f"method {name!r} mixes the label with the teachers' probabilities "
                        f"into one target: {ctx.n_teachers} teachers need protocol suite "
                        f"(got {ctx.protocol!r})")


def teacher_probs(teacher_logits: torch.Tensor) -> torch.Tensor:
    """[B, C]: the mean of the M teachers' softmax at temperature 1, no gradient."""
    return F.softmax(teacher_logits.detach(), dim=-1).mean(0)


@register_method
class Bootstrap(Method):
    name = "bootstrap"

    def setup(self, ctx):
        super().setup(ctx)
        refuse_several_under_authors(self.name, ctx)
        beta = self.hparams["beta"]
        self.beta = PAPER_BETA[self.hparams["mode"]] if beta is None else float(beta)

    def loss(self, out):
        s, y = out.logits, out.labels
        p = teacher_probs(out.teacher_logits).to(s.dtype)
        if self.hparams["mode"] == "hard":
            p = F.one_hot(p.argmax(1), s.shape[1]).to(s.dtype)
        target = self.beta * F.one_hot(y, s.shape[1]).to(s.dtype) + (1.0 - self.beta) * p
        return -(target * F.log_softmax(s, dim=1)).sum(1).mean()
