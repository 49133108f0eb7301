"""Reference test for ``bootstrap`` (Reed et al., ICLR 2015 workshop; no official code: the
paper's soft and hard bootstrapping, the teacher's prediction in place of the model's own):
naive float64 loops over instances and classes, independent of methods/bootstrap.py (only
methods.base is imported, here and in zoo_reference.py).

Per instance i with given label y: p = mean_m softmax(t_m) (temperature 1),
  soft: target = beta onehot(y) + (1 - beta) p
  hard: target = beta onehot(y) + (1 - beta) onehot(argmax_c p_c)
  loss = (1 / B) sum_i -sum_c target_ic log softmax(s_i)_c
beta null: 0.95 soft, 0.8 hard. Protocol authors refuses several teachers.
"""

import math

import pytest
import torch

from benchmark.core.errors import UserError
from methods.base import build_method
from tests.methods import zoo_reference as zoo

torch.set_num_threads(1)


def first_argmax(values):
    best = 0
    for c in range(1, len(values)):
        if values[c] > values[best]:
            best = c
    return best


def loss_naive(s, t, y, mode, beta):
    B, C = s.shape
    total = 0.0
    for i in range(B):
        p = zoo.teacher_mean_loop(t, i)
        if mode == "hard":
            k = first_argmax(p)
            p = [1.0 if c == k else 0.0 for c in range(C)]
        q = zoo.softmax_loop(s[i])
        for c in range(C):
            target = beta * (1.0 if c == int(y[i]) else 0.0) + (1.0 - beta) * p[c]
            total = total - target * torch.log(q[c])
    return total / B


def make(M, mode="soft", beta=None, protocol="suite", C=6):
    return zoo.setup_method("bootstrap", zoo.context(M, C, protocol), mode=mode, beta=beta)


def check(method, s, t, y, mode, beta):
    zoo.assert_loss_and_grad(zoo.run(method, s, t, y), loss_naive(s, t, y, mode, beta), s)


def test_defaults_are_the_papers():
    assert build_method("bootstrap").hparams == {"mode": "soft", "beta": None}


@pytest.mark.parametrize("mode", ["soft", "hard"])
@pytest.mark.parametrize(("B", "C", "M", "seed"), [(1, 2, 1, 0), (5, 7, 1, 1), (4, 10, 2, 2),
                                                   (6, 5, 3, 3)])
def test_loss_and_gradient_match_the_naive_reference(mode, B, C, M, seed):
    s, t, y = zoo.batch(B, C, M, seed)
    paper = {"soft": 0.95, "hard": 0.8}[mode]
    check(make(M, mode, None, C=C), s, t, y, mode, paper)  # null: the paper's beta
    for beta in (0.0, 0.3, 1.0):
        check(make(M, mode, beta, C=C), s, t, y, mode, beta)


def test_beta_one_is_ce_and_beta_zero_follows_the_teacher_only():
    s, t, y = zoo.batch(5, 6, 1, 7)
    ce = torch.nn.functional.cross_entropy(s, y)
    assert zoo.run(make(1, "soft", 1.0), s, t, y).item() == pytest.approx(ce.item(), rel=1e-12)
    # beta 0 hard: CE against the teacher's argmax, the given label ignored
    arg = torch.tensor([first_argmax([float(v) for v in t[0, i]]) for i in range(5)])
    ce_t = torch.nn.functional.cross_entropy(s, arg)
    got = zoo.run(make(1, "hard", 0.0), s, t, y)
    assert got.item() == pytest.approx(ce_t.item(), rel=1e-12)
    other = (y + 1) % 6  # the label does not enter at beta 0
    assert zoo.run(make(1, "hard", 0.0), s, t, other).item() == pytest.approx(got.item(), rel=1e-12)


def test_several_teachers_average_probabilities_not_logits():
    """Teacher 1 sure of class 0, teacher 2 split between 1 and 2: the mean probability's
    argmax is 0, the mean logit's is 2; soft mode likewise uses the mean probability."""
    s = torch.tensor([[0.3, -0.2, 0.5]], dtype=torch.float64, requires_grad=True)
    t = torch.tensor([[[5.0, 0.0, 0.0]], [[-5.0, 1.0, 1.2]]], dtype=torch.float64)
    y = torch.tensor([1])
    assert first_argmax(zoo.teacher_mean_loop(t, 0)) == 0
    assert int(t.mean(0).argmax()) == 2
    for mode in ("soft", "hard"):
        check(make(2, mode, 0.4, C=3), s, t, y, mode, 0.4)
    # hard with beta 0: the target is class 0 exactly
    got = zoo.run(make(2, "hard", 0.0, C=3), s, t, y)
    want = -math.log(float(torch.softmax(s.detach()[0], 0)[0]))
    assert got.item() == pytest.approx(want, rel=1e-12)


def test_the_teacher_gets_no_gradient():
    s, t, y = zoo.batch(4, 5, 2, 9)
    t = t.clone().requires_grad_(True)
    for mode in ("soft", "hard"):
        loss = zoo.run(make(2, mode, 0.5, C=5), s, t, y)
        assert torch.autograd.grad(loss, t, allow_unused=True)[0] is None


def test_protocols():
    s, t, y = zoo.batch(5, 6, 1, 11)
    suite = zoo.run(make(1, "soft", 0.7, "suite"), s, t, y)
    authors = zoo.run(make(1, "soft", 0.7, "authors"), s, t, y)
    assert authors.item() == suite.item()  # one teacher: the same rule
    with pytest.raises(UserError, match=r"^method 'bootstrap' mixes the label with the "
                                        r"teachers' probabilities .* 2 teachers need protocol "
                                        r"suite \(got 'authors'\)$"):
        make(2, protocol="authors")
    make(3, protocol="suite")
    with pytest.raises(UserError, match="teacher"):
        make(0)
