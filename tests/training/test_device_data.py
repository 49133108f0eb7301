import numpy as np
import pytest
import torch

from benchmark.core.atomic import write_npz_atomic
from benchmark.data import load_dataset
from benchmark.data.labels import LabelsRequest, build_labels, read_labels
from benchmark.data.noise import NoiseSpec
from benchmark.data.record import make_record
from benchmark.training.device_data import AugmentPolicy, DeviceData, crop_flip


def test_every_augmented_image_is_a_padded_crop_maybe_flipped():
    """Reference: slice each zero-padded image at every offset, as RandomCrop(32, padding=4)
    followed by RandomHorizontalFlip would; each output must be one of those."""
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(24, 3, 32, 32)
    out = crop_flip(x, 4, True, gen)
    padded = torch.nn.functional.pad(x, (4, 4, 4, 4))
    offsets, flips = set(), 0
    for i in range(len(x)):
        found = [(oy, ox, f) for oy in range(9) for ox in range(9) for f in (False, True)
                 if torch.equal(out[i], (lambda c: c.flip(2) if f else c)(
                     padded[i, :, oy:oy + 32, ox:ox + 32]))]
        assert found, f"image {i} is no crop of its padded input"
        offsets.add(found[0][:2])
        flips += found[0][2]
    assert len(offsets) > 10 and 0 < flips < len(x)


def test_flip_and_offsets_are_uniform():
    gen = torch.Generator().manual_seed(1)
    x = torch.arange(4.0).view(1, 1, 1, 4).expand(4000, 1, 1, 4).contiguous()
    out = crop_flip(x, 0, True, gen)
    flipped = (out[:, 0, 0, 0] == 3).float().mean().item()
    assert abs(flipped - 0.5) < 4.5 * (0.25 / 4000) ** 0.5


@pytest.mark.parametrize(("name", "expected"), [
    ("digits", AugmentPolicy(0, False)), ("synthetic", AugmentPolicy(0, False))])
def test_auto_policy_for_small_inputs(name, expected):
    assert AugmentPolicy.resolve("auto", load_dataset(name)) == expected


def test_auto_policy_for_cifar_and_fashion_sized_images():
    for size, pad in ((32, 4), (28, 2)):
        rec = make_record("x", np.zeros((10, 1, size, size), np.uint8), np.arange(10) % 2,
                          np.zeros((2, 1, size, size), np.uint8), np.array([0, 1]), ["a", "b"],
                          "official")
        assert AugmentPolicy.resolve("auto", rec) == AugmentPolicy(pad, True)
        assert AugmentPolicy.resolve("crop", rec) == AugmentPolicy(pad, False)
        assert AugmentPolicy.resolve("none", rec) == AugmentPolicy(0, False)


def test_device_data_uses_the_labels_file(tmp_path):
    rec = load_dataset("digits")
    path = tmp_path / "l.npz"
    write_npz_atomic(path, build_labels(LabelsRequest("digits", NoiseSpec("pairflip", 0.3), 0),
                                        rec))
    lf = read_labels(path)
    data = DeviceData(rec, lf, torch.device("cpu"))
    np.testing.assert_array_equal(data.y_train.numpy(), lf.arrays["train_noisy"])
    np.testing.assert_array_equal(data.y_val.numpy(), lf.arrays["val_labels"])
    clean = DeviceData(rec, lf, torch.device("cpu"), train_labels="clean")
    np.testing.assert_array_equal(clean.y_train.numpy(), lf.arrays["train_clean"])
    xs = torch.cat([x for x, _ in data.eval_batches("train", 500)])
    assert xs.shape == (1293, 1, 8, 8)
    assert abs(xs.mean().item()) < 0.05 and abs(xs.std().item() - 1) < 0.05
    gen = torch.Generator().manual_seed(0)
    idx = torch.arange(5)
    torch.testing.assert_close(data.train_batch(idx, gen), xs[:5])  # digits: no augmentation
