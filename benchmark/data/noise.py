"""Label-noise models: pure functions of (clean labels, spec, generator).

Every model returns the noisy labels, the transition matrix it sampled from (for
instance-dependent noise, the mean of the per-instance rows within each true class) and each
instance's probability of being flipped. Tests compare the realised rate with the mean of
those probabilities, the rate the model implies, not with the requested ``r``: for
``symmetric`` with ``include_true`` or ``asymmetric`` with a partial class map the two differ.

No torch, no data loading: the labels job and the planner stay light.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from benchmark.core.errors import UserError

NOISE_KINDS = ("symmetric", "asymmetric", "pairflip", "instance", "human")
# What instance noise projects (Xia et al.'s x): "raw", the inputs as the dataset stores them,
# flattened (uint8 pixel values 0..255 for images, not divided by 255, as Xia et al.'s
# data.py feeds them; the stored feature values for tabular data), the default; or
# "standardised", the normalised inputs the networks see (the suite's form before issue 30,
# id ``instance-std_<rate>``).
INSTANCE_FEATURES = ("raw", "standardised")
_FEATURES_TAG = {"raw": "", "standardised": "-std"}

_PATRINI_MNIST = {2: 7, 3: 8, 5: 6, 6: 5, 7: 1}
# Asymmetric class maps (true class -> noisy class), each flipped with probability r.
ASYMMETRIC_MAPS: dict[str, dict[int, int]] = {
    # Patrini et al. 2017 (CIFAR-10): truck->automobile, bird->airplane, deer->horse, cat<->dog.
    "cifar10": {9: 1, 2: 0, 4: 7, 3: 5, 5: 3},
    # Patrini et al. 2017 (MNIST): 2->7, 3->8, 5<->6, 7->1; also for sklearn's digits.
    "mnist": _PATRINI_MNIST,
    "digits": _PATRINI_MNIST,
    # The suite's own map of look-alike garments and shoes: T-shirt/top<->Shirt,
    # Pullover<->Coat, Sandal->Sneaker->Ankle boot->Sandal. Trouser, Dress and Bag are kept.
    "fashion_mnist": {0: 6, 6: 0, 2: 4, 4: 2, 5: 7, 7: 9, 9: 5},
    # CIFAR-100 as commonly implemented (Patrini et al.'s code, then co-teaching and most
    # noisy-label papers): each class flips to the next index within its block of five
    # consecutive indices (c -> 5*(c//5) + (c+1)%5). Note that fine labels are numbered
    # alphabetically, so these blocks are NOT CIFAR-100's semantic superclasses, although
    # papers often describe them as such.
    "cifar100": {c: 5 * (c // 5) + (c + 1) % 5 for c in range(100)},
}

_ID_RE = re.compile(r"^(?P<kind>[a-z]+)(?P<tag>-incl|-std)?_(?P<rate>[0-9.]+)$")


def format_rate(rate: float) -> str:
    """Two decimals where that is exact (0.40), all digits needed otherwise (0.125)."""
    short = f"{rate:.2f}"
    return short if float(short) == rate else repr(float(rate))


@dataclass(frozen=True)
class NoiseSpec:
    """What noise to apply. ``id`` is the readable path component used everywhere.

    ``features`` (instance noise only, None for every other kind) is what Xia et al.'s
    projection scores: ``raw`` (the default, their form) or ``standardised``, which shows in
    the id (``instance-std_0.40``), so the two never share a labels path.
    """

    kind: str
    rate: float | None = None
    variant: str | None = None
    include_true: bool = False
    features: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in NOISE_KINDS:
            raise UserError(f"unknown noise type {self.kind!r}; known: {', '.join(NOISE_KINDS)}")
        if self.kind == "human":
            if self.variant is None:
                raise UserError("human noise needs a variant (e.g. --variant aggre), not a rate")
            if self.rate is not None:
                raise UserError("human noise takes a variant, not a rate: drop --rate")
        else:
            if self.variant is not None:
                raise UserError(f"variant is only for human noise, not {self.kind!r}")
            if self.rate is None:
                raise UserError(f"noise {self.kind!r} needs a rate in [0, 1)")
            rate = float(self.rate)
            if not 0.0 <= rate < 1.0:
                raise UserError(f"noise rate must be in [0, 1), got {self.rate!r}")
            object.__setattr__(self, "rate", rate)
        if self.include_true and self.kind != "symmetric":
            raise UserError("include_true applies to symmetric noise only")
        if self.kind == "instance":
            features = "raw" if self.features is None else self.features
            if features not in INSTANCE_FEATURES:
                raise UserError(f"instance noise features must be one of "
                                f"{', '.join(INSTANCE_FEATURES)}, got {self.features!r}")
            object.__setattr__(self, "features", features)
        elif self.features is not None:
            raise UserError(f"features (raw or standardised) applies to instance noise only, "
                            f"not {self.kind!r}")

    @property
    def kind_id(self) -> str:
        """The id without its rate (``symmetric-incl``, ``instance-std``, ``human-aggre``): the
        noise type the tables and moderators keep apart."""
        if self.kind == "human":
            return f"human-{self.variant}"
        tag = "-incl" if self.include_true else _FEATURES_TAG.get(self.features, "")
        return f"{self.kind}{tag}"

    @property
    def id(self) -> str:
        if self.kind == "human":
            return self.kind_id
        return f"{self.kind_id}_{format_rate(self.rate)}"

    @property
    def stream_id(self) -> str:
        """The id the noise's random stream derives from: the id without the features form.

        So ``instance_r`` and ``instance-std_r`` of one seed draw the same flip rates,
        projections and uniforms (they differ only in what is projected), and
        ``instance-std_r`` gives the arrays that ``instance_r`` labels files had before the
        raw form existed."""
        if self.kind == "instance":
            return f"{self.kind}_{format_rate(self.rate)}"
        return self.id

    @classmethod
    def parse(cls, noise_id: str) -> NoiseSpec:
        if noise_id.startswith("human-"):
            return cls("human", variant=noise_id[len("human-"):])
        m = _ID_RE.match(noise_id)
        if not m:
            raise UserError(f"cannot parse noise id {noise_id!r} (e.g. symmetric_0.40, "
                            "symmetric-incl_0.40, pairflip_0.45, instance-std_0.40, "
                            "human-aggre)")
        tag = m["tag"]
        if tag == "-std" and m["kind"] != "instance":
            raise UserError(f"cannot parse noise id {noise_id!r}: -std (standardised "
                            "features) is for instance noise only")
        return cls(m["kind"], rate=float(m["rate"]), include_true=tag == "-incl",
                   features="standardised" if tag == "-std" else None)

    def to_dict(self) -> dict:
        out = {"kind": self.kind, "rate": self.rate, "variant": self.variant,
               "include_true": self.include_true, "id": self.id}
        if self.kind == "instance":  # only here: other kinds' labels files keep their bytes
            out["features"] = self.features
        return out


@dataclass(frozen=True)
class NoiseResult:
    noisy: np.ndarray  # int64 [N]
    expected_transition: np.ndarray  # float64 [C, C], rows sum to 1
    flip_prob: np.ndarray  # float64 [N]: probability that noisy != clean for each instance
    description: str


# ---- transition matrices ---------------------------------------------------------------

def symmetric_matrix(num_classes: int, rate: float) -> np.ndarray:
    """Flip with probability ``rate`` to a uniformly chosen *other* class."""
    c = num_classes
    t = np.full((c, c), rate / (c - 1))
    np.fill_diagonal(t, 1.0 - rate)
    return t


def pairflip_matrix(num_classes: int, rate: float) -> np.ndarray:
    """Flip with probability ``rate`` from c to c+1 (mod C)."""
    return map_matrix(num_classes, rate, {c: (c + 1) % num_classes for c in range(num_classes)})


def map_matrix(num_classes: int, rate: float, mapping: dict[int, int]) -> np.ndarray:
    t = np.eye(num_classes)
    for src, dst in mapping.items():
        if src != dst:
            t[src, src] = 1.0 - rate
            t[src, dst] = rate
    return t


def asymmetric_matrix(dataset: str, num_classes: int, rate: float) -> tuple[np.ndarray, str]:
    mapping = ASYMMETRIC_MAPS.get(dataset)
    if mapping is None:
        return pairflip_matrix(num_classes, rate), f"pairflip (no class map for {dataset})"
    if max(max(mapping), max(mapping.values())) >= num_classes:
        raise UserError(f"asymmetric map for {dataset} names classes beyond {num_classes}")
    return map_matrix(num_classes, rate, mapping), f"class map for {dataset}"


# ---- sampling --------------------------------------------------------------------------

def sample_rows(rows: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One draw from each row of a row-stochastic matrix [N, C] by the inverse CDF."""
    cum = np.cumsum(rows, axis=1)
    cum /= cum[:, -1:]  # so rounding never leaves a sliver past the last class with mass
    u = rng.random(len(rows))
    return np.minimum((u[:, None] >= cum).sum(axis=1), rows.shape[1] - 1).astype(np.int64)


def symmetric_include_true(clean: np.ndarray, num_classes: int, rate: float,
                           rng: np.random.Generator) -> NoiseResult:
    """The ALM-KD authors' convention: exactly int(N * r) instances, chosen without
    replacement, get a label drawn uniformly from all C classes (so about r(C-1)/C flip)."""
    n, c = len(clean), num_classes
    k = int(n * rate)
    chosen = rng.choice(n, size=k, replace=False)
    noisy = clean.copy()
    noisy[chosen] = rng.integers(0, c, size=k)
    q = k / n if n else 0.0
    expected = np.full((c, c), q / c)
    np.fill_diagonal(expected, 1.0 - q + q / c)
    flip = np.full(n, q * (c - 1) / c)
    return NoiseResult(noisy, expected, flip, f"include_true: {k} of {n} redrawn from all classes")


def instance_transition_rows(clean: np.ndarray, x: np.ndarray, q: np.ndarray, num_classes: int,
                             weight_for: Callable[[int], np.ndarray]) -> np.ndarray:
    """Per-instance rows P(noisy = j | x_i, y_i) of Xia et al.'s model, [N, C].

    Row i is q_i * softmax(x_i W_y with class y masked out) + (1 - q_i) * e_y.
    ``weight_for(y)`` gives W_y [D, C]; it is called once per class, in class order, so a
    caller that draws W_y from a generator keeps the stream fixed while holding one W_y in
    memory at a time (all of them, C x D x C doubles, would be gigabytes for large inputs).
    """
    rows = np.zeros((len(clean), num_classes))
    for y in range(num_classes):
        w = weight_for(y)
        idx = np.flatnonzero(clean == y)
        if len(idx) == 0:
            continue
        scores = x[idx] @ w
        scores[:, y] = -np.inf
        scores -= scores.max(axis=1, keepdims=True)
        p = np.exp(scores)
        p /= p.sum(axis=1, keepdims=True)
        rows[idx] = q[idx, None] * p
        rows[idx, y] += 1.0 - q[idx]
    return rows


def instance_model(clean: np.ndarray, features: np.ndarray, num_classes: int, rate: float,
                   rng: np.random.Generator, sd: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    """The flip rates q [N] and per-instance rows [N, C] of ``instance_noise``, drawn from
    ``rng`` in its order (q, then W_y class by class); the sampling of labels comes after."""
    from scipy.stats import truncnorm

    n, c = len(clean), num_classes
    x = np.asarray(features, dtype=np.float64).reshape(n, -1)
    q = truncnorm.rvs((0 - rate) / sd, (1 - rate) / sd, loc=rate, scale=sd, size=n,
                      random_state=rng)
    rows = instance_transition_rows(clean, x, q, c,
                                    lambda y: rng.standard_normal((x.shape[1], c)))
    return q, rows


def instance_noise(clean: np.ndarray, features: np.ndarray, num_classes: int, rate: float,
                   rng: np.random.Generator, sd: float = 0.1, form: str = "") -> NoiseResult:
    """Instance-dependent noise after Xia et al. 2020 (part-dependent label noise, their
    ``get_instance_noisy_label``, tools.py @ b682527): flip rate q_i ~ N(r, sd^2) truncated
    to [0, 1]; a random Gaussian projection W_y [D, C] (entries N(0, 1), not rescaled) of
    the input ``features`` x_i per true class y scores the other classes; the label flips
    with probability q_i, to class j != y with probability softmax(x_i W_y)_j.

    The scale of x matters: Xia et al. project raw pixel values 0..255, whose scores are so
    large that the softmax is nearly one-hot (one flip target per instance); standardised
    inputs spread the flips over several targets. ``form`` only names x in the description.
    """
    c = num_classes
    q, rows = instance_model(clean, features, c, rate, rng, sd)
    noisy = sample_rows(rows, rng)
    expected = np.eye(c)
    for y in range(c):
        idx = clean == y
        if idx.any():
            expected[y] = rows[idx].mean(axis=0)
    on = f" on {form} inputs" if form else ""
    return NoiseResult(noisy, expected, q, f"instance (Xia et al. 2020){on}, flip-rate sd {sd}")


def realised_transition(clean: np.ndarray, noisy: np.ndarray, num_classes: int) -> np.ndarray:
    """Empirical P(noisy = j | clean = i); rows of classes absent from ``clean`` are zero."""
    counts = np.zeros((num_classes, num_classes))
    np.add.at(counts, (clean, noisy), 1.0)
    totals = counts.sum(axis=1, keepdims=True)
    return np.divide(counts, totals, out=np.zeros_like(counts), where=totals > 0)


def apply_noise(spec: NoiseSpec, clean: np.ndarray, num_classes: int,
                rng: np.random.Generator, *, dataset: str = "", features: np.ndarray | None = None,
                human_noisy: np.ndarray | None = None) -> NoiseResult:
    """Noisy labels for ``clean`` under ``spec``; draws only from ``rng``."""
    clean = np.asarray(clean, dtype=np.int64)
    c = num_classes
    if spec.kind == "human":
        if human_noisy is None or len(human_noisy) != len(clean):
            raise ValueError("human noise needs the human labels of exactly these instances")
        noisy = np.asarray(human_noisy, dtype=np.int64).copy()
        t = realised_transition(clean, noisy, c)
        return NoiseResult(noisy, t, (noisy != clean).astype(np.float64), f"human {spec.variant}")
    if spec.rate == 0.0:
        return NoiseResult(clean.copy(), np.eye(c), np.zeros(len(clean)), "no noise (rate 0)")
    if spec.kind == "symmetric" and spec.include_true:
        return symmetric_include_true(clean, c, spec.rate, rng)
    if spec.kind == "instance":
        if features is None:
            raise ValueError("instance noise needs the inputs' features")
        return instance_noise(clean, features, c, spec.rate, rng, form=spec.features)
    if spec.kind == "symmetric":
        t, desc = symmetric_matrix(c, spec.rate), "uniform over the other classes"
    elif spec.kind == "pairflip":
        t, desc = pairflip_matrix(c, spec.rate), "c -> c+1 mod C"
    else:
        t, desc = asymmetric_matrix(dataset, c, spec.rate)
    noisy = sample_rows(t[clean], rng)
    return NoiseResult(noisy, t, 1.0 - t[clean, clean], desc)
