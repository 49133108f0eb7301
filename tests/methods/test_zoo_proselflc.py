"""Reference test for ``proselflc`` (Wang et al., CVPR 2021; XinshaoAmosWang/ProSelfLC-AT @
363b037, src/proselflc/slices/losses/proselflc.py:73-96, :138, crossentropy.py:47-49) with
the teacher's prediction in place of the model's own: naive float64 loops over instances and
classes, independent of methods/proselflc.py (only methods.base is imported, here and in
zoo_reference.py).

Their iteration counter (trainer_cnn_vision.py:221): batch k (0-based) of epoch e (0-based
here) is time e * S + k + 1 of total E * S, S = ceil(n_train / batch size).
  g    = 1 / (1 + exp(-B (time / total - transit)))
  p    = mean_m softmax(t_m);  H = -sum_c (p_c + 1e-12) log(p_c + 1e-12);  l = 1 - H / log C
  eps  = g * l;  target = (1 - eps) onehot(y) + eps p
  loss = (1 / B) sum_i -sum_c target_ic log softmax(s_i)_c     (eps and p constants)
"""

import math
from types import SimpleNamespace

import pytest
import torch

from benchmark.core.errors import UserError
from methods.base import build_method
from tests.methods import zoo_reference as zoo

torch.set_num_threads(1)

HP = {"B": 6.0, "transit": 0.3}  # their CIFAR-100 run (params.csv @ 363b037)


def global_trust(time, total, B, transit):
    return 1.0 / (1.0 + math.exp(-B * (time / total - transit)))


def loss_naive(s, t, y, g):
    Bsz, C = s.shape
    total = 0.0
    for i in range(Bsz):
        p = zoo.teacher_mean_loop(t, i)
        H = sum(-(p[c] + 1e-12) * math.log(p[c] + 1e-12) for c in range(C))
        eps = g * (1.0 - H / math.log(C))
        q = zoo.softmax_loop(s[i])
        for c in range(C):
            target = (1.0 - eps) * (1.0 if c == int(y[i]) else 0.0) + eps * p[c]
            total = total - target * torch.log(q[c])
    return total / Bsz


def make(M, protocol="suite", C=6, n_train=10, batch_size=4, epochs=3, **hp):
    cfg = SimpleNamespace(epochs=epochs, batch_size=batch_size)
    ctx = zoo.context(M, C, protocol, n_train=n_train, extras={"cfg": cfg})
    return zoo.setup_method("proselflc", ctx, **(hp or HP))


def check(got, s, t, y, g):
    zoo.assert_loss_and_grad(got, loss_naive(s, t, y, g), s)


def test_defaults_are_the_authors_cifar100_run():
    # proselflc_experiments/cifar100_symmetric_noise_rate_0.2/shufflenetv2/
    # 050_proselflc_warm16_b6_transit0.3_*/params.csv @ 363b037: exp_base 6, transit 0.3
    assert build_method("proselflc").hparams == {"B": 6.0, "transit": 0.3}


@pytest.mark.parametrize(("B", "C", "M", "seed"), [(1, 2, 1, 0), (5, 7, 1, 1), (4, 10, 2, 2),
                                                   (6, 5, 3, 3)])
@pytest.mark.parametrize("hp", [HP, {"B": 16.0, "transit": 0.5}, {"B": 2.0, "transit": 0.0}])
def test_loss_and_gradient_along_the_schedule(B, C, M, seed, hp):
    """Every step of a 3-epoch run (n 10, batch 4: S = 3 steps per epoch, total 9)."""
    s, t, y = zoo.batch(B, C, M, seed)
    method = make(M, C=C, **hp)
    for epoch in range(3):
        method.on_epoch_start(epoch, None)
        for k in range(3):
            g = global_trust(epoch * 3 + k + 1, 9, hp["B"], hp["transit"])
            check(zoo.run(method, s, t, y), s, t, y, g)


def test_steps_per_epoch_count_the_last_partial_batch():
    s, t, y = zoo.batch(3, 4, 1, 5)
    method = make(1, C=4, n_train=100, batch_size=32, epochs=5)  # S = 4, total 20
    method.on_epoch_start(2, None)
    zoo.run(method, s, t, y)
    check(zoo.run(method, s, t, y), s, t, y, global_trust(2 * 4 + 2, 20, 6.0, 0.3))
    method.on_epoch_start(4, None)
    for _ in range(3):
        zoo.run(method, s, t, y)
    check(zoo.run(method, s, t, y), s, t, y, global_trust(20, 20, 6.0, 0.3))  # the last step
    # past the end (a timing loop): held at time = total, as theirs refuses more
    check(zoo.run(method, s, t, y), s, t, y, global_trust(20, 20, 6.0, 0.3))


def test_resume_is_exact():
    s, t, y = zoo.batch(4, 6, 2, 6)
    a = make(2)
    a.on_epoch_start(0, None)
    zoo.run(a, s, t, y)
    zoo.run(a, s, t, y)
    state = a.state_dict()
    b = make(2)
    b.load_state_dict(state)  # mid-epoch: the counter itself
    torch.testing.assert_close(zoo.run(b, s, t, y), zoo.run(a, s, t, y), rtol=0, atol=0)
    # at an epoch start (the engine's checkpoints): the epoch sets it
    a.on_epoch_start(1, None)
    c = make(2)
    c.load_state_dict(a.state_dict())
    c.on_epoch_start(1, None)
    check(zoo.run(c, s, t, y), s, t, y, global_trust(4, 9, 6.0, 0.3))
    assert c.state_dict() == {"step": 4}


def test_trust_edge_cases():
    s, t, y = zoo.batch(5, 6, 1, 8)
    ce = torch.nn.functional.cross_entropy(s, y)
    # a uniform teacher: local trust 0, the loss is CE whatever the time
    method = make(1)
    method.on_epoch_start(2, None)
    assert zoo.run(method, s, torch.zeros_like(t), y).item() == pytest.approx(ce.item(), rel=1e-9)
    # a huge B before the transit: g = 0, CE; after it: g = 1, eps = local trust
    early = make(1, B=1e4, transit=0.5)
    early.on_epoch_start(0, None)
    assert zoo.run(early, s, t, y).item() == pytest.approx(ce.item(), rel=1e-12)
    late = make(1, B=1e4, transit=0.5)
    late.on_epoch_start(2, None)
    check(zoo.run(late, s, t, y), s, t, y, 1.0)
    # a near one-hot teacher late in training: the target is (almost) the teacher's class
    sure = torch.full_like(t, -60.0)
    sure[0, torch.arange(5), (y + 1) % 6] = 60.0
    got = zoo.run(late, s, sure, y)
    want = torch.nn.functional.cross_entropy(s, (y + 1) % 6)
    assert got.item() == pytest.approx(want.item(), rel=1e-6)


def test_several_teachers_use_the_entropy_of_the_mean():
    """Two confident teachers that disagree: each has low entropy, their mean a high one."""
    s = torch.tensor([[0.3, -0.2, 0.5, 0.1]], dtype=torch.float64, requires_grad=True)
    t = torch.tensor([[[9.0, 0.0, 0.0, 0.0]], [[0.0, 9.0, 0.0, 0.0]]], dtype=torch.float64)
    y = torch.tensor([2])
    method = make(2, C=4)
    method.on_epoch_start(1, None)
    check(zoo.run(method, s, t, y), s, t, y, global_trust(4, 9, 6.0, 0.3))


def test_the_teacher_gets_no_gradient_and_protocols():
    s, t, y = zoo.batch(4, 5, 2, 9)
    t = t.clone().requires_grad_(True)
    loss = zoo.run(make(2, C=5), s, t, y)
    assert torch.autograd.grad(loss, t, allow_unused=True)[0] is None
    s, t, y = zoo.batch(5, 6, 1, 11)
    suite, authors = make(1), make(1, protocol="authors")
    assert zoo.run(authors, s, t, y).item() == zoo.run(suite, s, t, y).item()
    with pytest.raises(UserError, match=r"^method 'proselflc' mixes the label .* protocol "
                                        r"suite \(got 'authors'\)$"):
        make(2, protocol="authors")
    with pytest.raises(UserError, match="teacher"):
        make(0)
    zoo.setup_refusal("proselflc", 1, r"^method 'proselflc' needs the run's training config "
                                      r"\(epochs and batch size\) for its trust schedule$", **HP)
