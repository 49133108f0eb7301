"""``kd_finetune``: kd on the noisy training set for the whole schedule, then a short
fine-tune on the meta split (``finetune_epochs`` epochs of CE on its clean labels at the
constant ``finetune_lr``; null: a tenth of the schedule's initial lr), in the same run.

The engine runs the fine-tune after the schedule (benchmark/training/engine.py): the kd epochs are
exactly a kd run's, the same optimizer (its momentum kept) continues on the meta split, and
the epoch is selected over all epochs on the selection split, as for every method.
"""

from .base import register_method
from .kd import KD


@register_method
class KDFinetune(KD):
    name = "kd_finetune"

    def finetune(self, base_lr):
        lr = self.hparams["finetune_lr"]
        epochs = int(self.hparams["finetune_epochs"])
        return (epochs, float(lr) if lr is not None else 0.1 * base_lr) if epochs else None
