"""sklearn-bundled datasets: always available offline, no files to fetch."""

from __future__ import annotations

import numpy as np

from benchmark.data.record import carve_test_split, make_record
from benchmark.data.registry import register_dataset

# The ALM-KD authors' synthetic task (their utils/synthetic.py, type "class"): 10,000 points,
# 14 informative features, 20 balanced classes, one Gaussian cluster per class, class_sep 1.0,
# no label flipping by sklearn. Their default generator seed is 42; the data are fixed across
# run seeds here (only split, noise and training vary), which keeps the design paired.
SYNTHETIC_GENERATOR_SEED = 42
# Their 10% test split of 10,000, then 10% of the remaining 9,000 for validation: 8,100/900/1,000.
SYNTHETIC_TEST_FRACTION = 0.1
# Fixed seed for the test splits carved from datasets that have no official test set.
CARVED_TEST_SEED = 20220207
DIGITS_TEST_FRACTION = 0.2


@register_dataset("synthetic", num_classes=20, kind="tabular",
                  description="sklearn make_classification as in the ALM-KD authors' code")
def load_synthetic(data_root=None, download=False):
    from sklearn.datasets import make_classification

    x, y = make_classification(
        n_samples=10_000, n_features=14, n_informative=14, n_redundant=0, n_repeated=0,
        n_classes=20, n_clusters_per_class=1, class_sep=1.0, flip_y=0.0,
        random_state=SYNTHETIC_GENERATOR_SEED,
    )
    x = x.astype(np.float32)
    tx, ty, vx, vy = carve_test_split(x, y, SYNTHETIC_TEST_FRACTION, CARVED_TEST_SEED)
    names = [f"class_{i}" for i in range(20)]
    return make_record("synthetic", tx, ty, vx, vy, names,
                       f"carved: stratified {SYNTHETIC_TEST_FRACTION:.0%}, seed {CARVED_TEST_SEED}")


@register_dataset("digits", num_classes=10, kind="image",
                  description="sklearn load_digits, 8x8 grey images")
def load_digits(data_root=None, download=False):
    from sklearn.datasets import load_digits as sk_load_digits

    bunch = sk_load_digits()
    # Pixel values are counts 0..16; scale to the uint8 range every image dataset uses.
    images = np.rint(bunch.images * (255.0 / 16.0)).astype(np.uint8)[:, None, :, :]
    tx, ty, vx, vy = carve_test_split(images, bunch.target, DIGITS_TEST_FRACTION, CARVED_TEST_SEED)
    return make_record("digits", tx, ty, vx, vy, [str(i) for i in range(10)],
                       f"carved: stratified {DIGITS_TEST_FRACTION:.0%}, seed {CARVED_TEST_SEED}")
