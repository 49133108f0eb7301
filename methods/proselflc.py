"""``proselflc``: ProSelfLC with the teacher's prediction in place of the model's own (Wang,
Hua, Kodirov, Clifton, Robertson, "ProSelfLC: Progressive Self Label Correction for Training
Robust Deep Neural Networks", CVPR 2021; XinshaoAmosWang/ProSelfLC-AT @ 363b037, the same
repository as ProSelfLC-CVPR2021).

    p    = mean_m softmax(t_m)                        (teachers at temperature 1)
    g    = 1 / (1 + exp(-B * (time / total - transit)))           global trust
    l_i  = 1 - H(p_i) / log C,  H(p) = -sum_c (p_c + 1e-12) log(p_c + 1e-12)   local trust
    eps_i = g * l_i;  target_i = (1 - eps_i) * onehot(y_i) + eps_i * p_i
    loss = mean_i -sum_c target_ic * log softmax(s_i)_c

Ported from src/proselflc/slices/losses/proselflc.py: ``update_epsilon_progressive_adaptive``
:73-96 (under no_grad), the target :138, the loss: CrossEntropy.forward in crossentropy.py
:47-49 (sum over classes, / N). Time: their CIFAR-100 runs count iterations
(``counter: iteration``; trainer_cnn_vision.py:75-77, :221: the first batch of epoch 1 is
time 1, total = epochs x batches per epoch); here the step of the run, e * S + k + 1
for batch k of 0-based epoch e, S = ceil(n_train / batch size) (the engine's batches, none
dropped), reset from the epoch at every epoch start (exact on resume) and kept in
state_dict. Differences (docs/reproduction-notes.md, Z-proselflc): the teacher's p in place
of the model's own (theirs is not detached in the target, so their gradient also flows
through it); log_softmax instead of their log(p + 1e-6).
Defaults B = 6 (exp_base), transit = 0.3: their one released CIFAR-100 run, params.csv of
proselflc_experiments/cifar100_symmetric_noise_rate_0.2/shufflenetv2/050_proselflc_warm16_b6
_transit0.3 (README.md:168 @ 363b037); their sweep (tests/convnets/test_trainer_cnn_vision_
cifar100_proselflc_covnets.py:64-65) tries B 4..14, transit 0.2..0.7; the CVPR paper and
their code before b6fd945 fix the transit at 0.5 (Gamma / 2). Several teachers: the mean of
their probabilities under protocol suite; protocol authors refuses M > 1.
"""

import math

import torch
import torch.nn.functional as F

from benchmark.core.errors import UserError

from .base import Method, register_method
from .bootstrap import refuse_several_under_authors, teacher_probs


@register_method
class ProSelfLC(Method):
    name = "proselflc"

    def setup(self, ctx):
        super().setup(ctx)
        refuse_several_under_authors(self.name, ctx)
        cfg = ctx.extras.get("cfg")
        if cfg is None:
            raise UserError("method 'proselflc' needs the run's training config (epochs and "
                            "batch size) for its trust schedule")
        self.steps_per_epoch = math.ceil(ctx.n_train / cfg.batch_size)
        self.total = cfg.epochs * self.steps_per_epoch
        self.step = 0  # training steps taken so far (their iteration counter, minus one)

    def on_epoch_start(self, epoch, ctx):
        self.step = epoch * self.steps_per_epoch

    def global_trust(self) -> float:
        ratio = min(self.step, self.total) / self.total  # theirs refuses time > total
        x = self.hparams["B"] * (ratio - self.hparams["transit"])
        return 1.0 / (1.0 + math.exp(-x)) if x >= 0 else math.exp(x) / (1.0 + math.exp(x))

    def loss(self, out):
        self.step += 1
        s, y = out.logits, out.labels
        p = teacher_probs(out.teacher_logits).to(s.dtype)
        with torch.no_grad():
            entropy = -((p + 1e-12) * torch.log(p + 1e-12)).sum(1)
            eps = (self.global_trust() * (1.0 - entropy / math.log(s.shape[1])))[:, None]
        target = (1.0 - eps) * F.one_hot(y, s.shape[1]).to(s.dtype) + eps * p
        return -(target * F.log_softmax(s, dim=1)).sum(1).mean()

    def state_dict(self):
        return {"step": self.step}

    def load_state_dict(self, state):
        self.step = int(state["step"])
