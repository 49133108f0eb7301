"""Noise models against their transition matrices, hand-built references and torch."""

import numpy as np
import pytest

from benchmark.core.errors import UserError
from benchmark.data.noise import (
    ASYMMETRIC_MAPS,
    NoiseSpec,
    apply_noise,
    asymmetric_matrix,
    format_rate,
    instance_transition_rows,
    pairflip_matrix,
    realised_transition,
    sample_rows,
    symmetric_matrix,
)

N = 20_000
SIGMAS = 4.5  # two-sided tail about 7e-6 per check: no flaky failures, still tight


def balanced_labels(n, c, seed=0):
    return np.random.default_rng(seed).permutation(np.arange(n) % c).astype(np.int64)


def check_rate_and_matrix(clean, res, c):
    """Realised rate within a binomial (Poisson-binomial) tolerance of the implied rate, and each
    count of the realised transition matrix inside the exact binomial interval of the expected
    entry (Bonferroni over the C^2 entries)."""
    from scipy.stats import binom

    p = res.flip_prob
    realised = np.mean(res.noisy != clean)
    sd = np.sqrt(np.sum(p * (1 - p))) / len(clean)
    assert abs(realised - p.mean()) <= SIGMAS * sd + 1e-12, (realised, p.mean(), sd)
    t_hat = realised_transition(clean, res.noisy, c)
    t = res.expected_transition
    np.testing.assert_allclose(t.sum(axis=1), 1.0, atol=1e-12)
    n_c = np.bincount(clean, minlength=c)[:, None]
    counts = np.rint(t_hat * n_c)
    alpha = 1e-5 / t.size
    lo, hi = binom.ppf(alpha / 2, n_c, t), binom.isf(alpha / 2, n_c, t)
    bad = np.argwhere((counts < lo) | (counts > hi))
    assert len(bad) == 0, [(i, j, counts[i, j], t[i, j], n_c[i, 0]) for i, j in bad[:5]]


CASES = [
    (NoiseSpec("symmetric", 0.2), 10, "synthetic"),
    (NoiseSpec("symmetric", 0.4), 10, "synthetic"),
    (NoiseSpec("symmetric", 0.8), 20, "synthetic"),
    (NoiseSpec("symmetric", 0.4, include_true=True), 10, "synthetic"),
    (NoiseSpec("symmetric", 0.2, include_true=True), 100, "cifar100"),
    (NoiseSpec("pairflip", 0.2), 10, "synthetic"),
    (NoiseSpec("pairflip", 0.45), 10, "synthetic"),
    (NoiseSpec("asymmetric", 0.4), 10, "cifar10"),
    (NoiseSpec("asymmetric", 0.2), 100, "cifar100"),
    (NoiseSpec("asymmetric", 0.4), 10, "fashion_mnist"),
    (NoiseSpec("asymmetric", 0.3), 10, "digits"),
    (NoiseSpec("asymmetric", 0.4), 20, "synthetic"),
    (NoiseSpec("instance", 0.2), 10, "synthetic"),
    (NoiseSpec("instance", 0.4), 10, "synthetic"),
]


@pytest.mark.parametrize(("spec", "c", "dataset"), CASES, ids=lambda v: getattr(v, "id", str(v)))
def test_realised_noise_matches_implied_noise(spec, c, dataset):
    clean = balanced_labels(N, c)
    features = np.random.default_rng(1).standard_normal((N, 12))
    res = apply_noise(spec, clean, c, np.random.default_rng(7), dataset=dataset,
                      features=features)
    assert res.noisy.dtype == np.int64 and res.noisy.min() >= 0 and res.noisy.max() < c
    check_rate_and_matrix(clean, res, c)


def test_symmetric_matrix_structure():
    t = symmetric_matrix(5, 0.4)
    np.testing.assert_allclose(np.diag(t), 0.6)
    off = t[~np.eye(5, dtype=bool)]
    np.testing.assert_allclose(off, 0.1)


def test_pairflip_only_moves_to_next_class():
    t = pairflip_matrix(4, 0.3)
    expected = np.array([[0.7, 0.3, 0, 0], [0, 0.7, 0.3, 0], [0, 0, 0.7, 0.3], [0.3, 0, 0, 0.7]])
    np.testing.assert_allclose(t, expected)
    clean = balanced_labels(4000, 4)
    res = apply_noise(NoiseSpec("pairflip", 0.3), clean, 4, np.random.default_rng(0))
    moved = res.noisy != clean
    assert np.all(res.noisy[moved] == (clean[moved] + 1) % 4)


def test_asymmetric_cifar10_only_mapped_pairs():
    t, desc = asymmetric_matrix("cifar10", 10, 0.4)
    off = {(int(i), int(j)) for i, j in zip(*np.nonzero(t - np.diag(np.diag(t))), strict=True)}
    # truck->automobile, bird->airplane, deer->horse, cat<->dog
    assert off == {(9, 1), (2, 0), (4, 7), (3, 5), (5, 3)}
    clean = balanced_labels(N, 10)
    res = apply_noise(NoiseSpec("asymmetric", 0.4), clean, 10, np.random.default_rng(0),
                      dataset="cifar10")
    for src in range(10):
        got = set(np.unique(res.noisy[clean == src]).tolist())
        assert got == ({src, ASYMMETRIC_MAPS["cifar10"][src]} if src in ASYMMETRIC_MAPS["cifar10"]
                       else {src})


def test_cifar100_map_stays_in_blocks_of_five_and_is_a_permutation():
    m = ASYMMETRIC_MAPS["cifar100"]
    assert sorted(m) == list(range(100)) and sorted(m.values()) == list(range(100))
    assert all(dst // 5 == src // 5 and dst != src for src, dst in m.items())
    assert m[4] == 0 and m[0] == 1


def test_fashion_mnist_map_keeps_trouser_dress_bag():
    t, _ = asymmetric_matrix("fashion_mnist", 10, 0.4)
    for kept in (1, 3, 8):
        np.testing.assert_array_equal(t[kept], np.eye(10)[kept])
    assert t[0, 6] == t[6, 0] == 0.4  # T-shirt/top <-> Shirt


def test_asymmetric_without_map_is_pairflip():
    t, desc = asymmetric_matrix("synthetic", 20, 0.4)
    np.testing.assert_allclose(t, pairflip_matrix(20, 0.4))
    assert "pairflip" in desc


def test_include_true_redraws_exactly_int_n_r_labels():
    clean = balanced_labels(1000, 10)
    res = apply_noise(NoiseSpec("symmetric", 0.37, include_true=True), clean, 10,
                      np.random.default_rng(3))
    k = int(1000 * 0.37)
    changed = np.sum(res.noisy != clean)
    assert changed <= k
    # About 1/C of the redrawn labels land on the true class again.
    assert abs(changed - k * 0.9) <= SIGMAS * np.sqrt(k * 0.9 * 0.1)
    np.testing.assert_allclose(res.flip_prob, k / 1000 * 0.9)


def test_instance_rates_vary_and_average_near_r():
    clean = balanced_labels(N, 10)
    x = np.random.default_rng(2).standard_normal((N, 20))
    res = apply_noise(NoiseSpec("instance", 0.4), clean, 10, np.random.default_rng(0),
                      features=x)
    q = res.flip_prob
    assert 0 <= q.min() and q.max() <= 1
    assert q.std() > 0.08  # truncated N(0.4, 0.1^2) has sd ~0.1
    assert abs(q.mean() - 0.4) < 0.005
    # The flip target depends on the input: within one class several targets occur.
    assert len(np.unique(res.noisy[(clean == 0) & (res.noisy != 0)])) > 1


def test_instance_rows_match_torch_reference():
    """The vectorised rows against a per-instance loop written from Xia et al.'s code."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(5)
    n, d, c = 40, 6, 5
    clean = rng.integers(0, c, n)
    x = rng.standard_normal((n, d))
    q = rng.uniform(0.1, 0.6, n)
    w = rng.standard_normal((c, d, c))
    rows = instance_transition_rows(clean, x, q, c, lambda y: w[y])
    wt = torch.from_numpy(w)
    for i in range(n):
        a = torch.from_numpy(x[i]).view(1, -1).mm(wt[clean[i]]).squeeze(0)
        a[clean[i]] = -float("inf")
        a = q[i] * torch.softmax(a, dim=0)
        a[clean[i]] += 1 - q[i]
        np.testing.assert_allclose(rows[i], a.numpy(), rtol=1e-12, atol=1e-14)


def test_sample_rows_frequencies():
    rows = np.tile([0.2, 0.0, 0.5, 0.3], (60_000, 1))
    draws = sample_rows(rows, np.random.default_rng(0))
    freq = np.bincount(draws, minlength=4) / len(draws)
    sd = np.sqrt(rows[0] * (1 - rows[0]) / len(draws))
    assert np.all(np.abs(freq - rows[0]) <= SIGMAS * sd + 1e-12)
    assert freq[1] == 0


@pytest.mark.parametrize("kind", ["symmetric", "pairflip", "asymmetric", "instance"])
def test_rate_zero_is_clean(kind):
    clean = balanced_labels(500, 10)
    res = apply_noise(NoiseSpec(kind, 0.0), clean, 10, np.random.default_rng(0),
                      features=np.zeros((500, 3)), dataset="cifar10")
    np.testing.assert_array_equal(res.noisy, clean)


def test_same_generator_same_noise():
    clean = balanced_labels(2000, 10)
    a = apply_noise(NoiseSpec("symmetric", 0.4), clean, 10, np.random.default_rng(11))
    b = apply_noise(NoiseSpec("symmetric", 0.4), clean, 10, np.random.default_rng(11))
    c = apply_noise(NoiseSpec("symmetric", 0.4), clean, 10, np.random.default_rng(12))
    np.testing.assert_array_equal(a.noisy, b.noisy)
    assert not np.array_equal(a.noisy, c.noisy)


def test_human_noise_uses_given_labels():
    clean = np.array([0, 1, 2, 3, 0, 1])
    human = np.array([0, 2, 2, 3, 1, 1])
    res = apply_noise(NoiseSpec("human", variant="aggre"), clean, 4, np.random.default_rng(0),
                      human_noisy=human)
    np.testing.assert_array_equal(res.noisy, human)
    np.testing.assert_array_equal(res.flip_prob, [0, 1, 0, 0, 1, 0])
    np.testing.assert_allclose(res.expected_transition[0], [0.5, 0.5, 0, 0])


@pytest.mark.parametrize("noise_id", ["symmetric_0.40", "symmetric-incl_0.40", "pairflip_0.45",
                                      "asymmetric_0.20", "instance_0.125", "human-aggre",
                                      "human-noisy", "symmetric_0.00"])
def test_noise_id_round_trip(noise_id):
    assert NoiseSpec.parse(noise_id).id == noise_id


def test_rate_format_never_collides():
    assert format_rate(0.4) == "0.40"
    assert format_rate(0.125) == "0.125"
    assert format_rate(0.13) != format_rate(0.125)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"kind": "gaussian", "rate": 0.2}, "unknown noise type 'gaussian'"),
    ({"kind": "symmetric", "rate": 1.0}, r"rate must be in \[0, 1\), got 1.0"),
    ({"kind": "symmetric", "rate": -0.1}, r"rate must be in \[0, 1\)"),
    ({"kind": "symmetric"}, "needs a rate"),
    ({"kind": "human"}, "needs a variant"),
    ({"kind": "human", "variant": "aggre", "rate": 0.2}, "not a rate"),
    ({"kind": "pairflip", "rate": 0.2, "include_true": True}, "symmetric noise only"),
    ({"kind": "pairflip", "rate": 0.2, "variant": "aggre"}, "only for human"),
])
def test_bad_noise_specs(kwargs, message):
    with pytest.raises(UserError, match=message):
        NoiseSpec(**kwargs)


def test_unparsable_noise_id():
    with pytest.raises(UserError, match="cannot parse noise id 'sym40'"):
        NoiseSpec.parse("sym40")
