"""Reference test for ``tfkd`` (Yuan et al., CVPR 2020; yuanli2333/Teacher-free-Knowledge-
Distillation @ d000ab3, my_loss_function.py:33-51 ``loss_kd_regularization``): naive float64
loops over instances and classes, independent of methods/tfkd.py (only methods.base is
imported, here and in zoo_reference.py).

Per instance i with given label y, a = correct_prob:
  u_ik = a if k = y else (1 - a) / (C - 1);  v_i = softmax(u_i / T)
  KL   = (1 / (B C)) sum_i sum_k v_ik (log v_ik - log softmax(s_i)_k)   (KLDivLoss 'mean')
  loss = (1 - kd_weight) (1 / B) sum_i CE_i + kd_weight * multiplier * KL
The student at temperature 1, no T^2.
"""

import math

import pytest
import torch

from benchmark.core.errors import UserError
from methods.base import build_method
from tests.methods import zoo_reference as zoo

torch.set_num_threads(1)


def virtual_teacher(C, y, a, T):
    u = [a if k == y else (1.0 - a) / (C - 1) for k in range(C)]
    e = [math.exp(u[k] / T) for k in range(C)]
    return [v / sum(e) for v in e]


def loss_naive(s, y, *, T, kd_weight, multiplier, correct_prob):
    B, C = s.shape
    ce, kl = 0.0, 0.0
    for i in range(B):
        q = zoo.softmax_loop(s[i])
        ce = ce - torch.log(q[int(y[i])])
        v = virtual_teacher(C, int(y[i]), correct_prob, T)
        for k in range(C):
            kl = kl + v[k] * (math.log(v[k]) - torch.log(q[k]))
    return (1.0 - kd_weight) * ce / B + kd_weight * multiplier * kl / (B * C)


def make(C=6, n_teachers=0, **hp):
    return zoo.setup_method("tfkd", zoo.context(n_teachers, C), **hp)


def student(B, C, seed):
    """Student logits and labels: no teacher drawn."""
    s, _, y = zoo.batch(B, C, None, seed)
    return s, y


def check(method, s, y, **ref):
    zoo.assert_loss_and_grad(zoo.run(method, s, None, y), loss_naive(s, y, **ref), s)


def test_defaults_are_the_authors_resnet18_cifar100_file():
    # experiments/base_experiments/base_resnet18/params.json:6-7,11 @ d000ab3;
    # correct_prob: my_loss_function.py:39
    assert build_method("tfkd").hparams == {"T": 20.0, "kd_weight": 0.1,
                                            "multiplier": 100.0, "correct_prob": 0.99}


HPS = [
    {"T": 20.0, "kd_weight": 0.1, "multiplier": 100.0, "correct_prob": 0.99},
    {"T": 1.0, "kd_weight": 0.95, "multiplier": 1.0, "correct_prob": 0.9},
    {"T": 0.05, "kd_weight": 0.5, "multiplier": 50.0, "correct_prob": 0.6},
    {"T": 3.0, "kd_weight": 1.0, "multiplier": 10.0, "correct_prob": 0.0},
]


@pytest.mark.parametrize(("B", "C", "seed"), [(1, 2, 0), (5, 7, 1), (4, 10, 2), (8, 100, 3)])
@pytest.mark.parametrize("hp", HPS)
def test_loss_and_gradient_match_the_naive_reference(B, C, seed, hp):
    s, y = student(B, C, seed)
    check(make(C=C, **hp), s, y, **hp)


def test_edge_cases():
    s, y = student(5, 6, 4)
    ce = torch.nn.functional.cross_entropy(s, y)
    hp = {"T": 2.0, "multiplier": 7.0, "correct_prob": 0.8}
    got = zoo.run(make(kd_weight=0.0, **hp), s, None, y)
    assert got.item() == pytest.approx(ce.item(), rel=1e-12)  # no regulariser
    # the virtual teacher is built at the GIVEN label: another label, another loss
    a = zoo.run(make(kd_weight=1.0, **hp), s, None, y).item()
    b = zoo.run(make(kd_weight=1.0, **hp), s, None, (y + 1) % 6).item()
    assert a != pytest.approx(b, rel=1e-6)
    # correct_prob = 1 / C: the virtual teacher is uniform whatever T
    u = zoo.run(make(kd_weight=1.0, T=2.0, multiplier=1.0, correct_prob=1 / 6), s, None, y)
    logq = torch.log_softmax(s, 1)
    want = sum(-(math.log(6) + logq[i]).sum() / 6 for i in range(5)) / (5 * 6)
    assert u.item() == pytest.approx(want.item(), rel=1e-10)


def test_no_teacher():
    with pytest.raises(UserError, match="uses no teacher"):
        make(n_teachers=1)
