"""Shared test helpers.

Tests that need real data files (Fashion-MNIST from the Debian package; the CIFAR-N label
files where docs/datasets.md tells a user to put them: $NOISYKD_CIFARN_DIR, else data/cifar-n)
skip with the reason when the files are absent, except under CI (CI=true), where a missing
file means a broken install step and fails the test."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


def require_data(path: Path, what: str, how: str) -> Path:
    if path.exists():
        return path
    reason = f"{what} not found at {path}: {how}"
    if os.environ.get("CI") == "true":
        pytest.fail(f"under CI: {reason}")
    pytest.skip(reason)


@pytest.fixture
def cifar_n_dir() -> Path:
    """Where docs/datasets.md tells a user to put the CIFAR-N files: $NOISYKD_CIFARN_DIR, else
    data/cifar-n of the checkout (the default data root's cifar-n folder)."""
    env = os.environ.get("NOISYKD_CIFARN_DIR")
    path = Path(env) if env else REPO_ROOT / "data" / "cifar-n"
    return require_data(
        path / "CIFAR-10_human.pt", "CIFAR-N label files",
        "put CIFAR-10_human.pt and CIFAR-100_human.pt in data/cifar-n or set "
        "$NOISYKD_CIFARN_DIR (docs/datasets.md)",
    ).parent


@pytest.fixture
def fashion_mnist_dir() -> Path:
    from benchmark.data.fashion_mnist import DEBIAN_DIR

    return require_data(
        DEBIAN_DIR / "train-images-idx3-ubyte.gz", "Fashion-MNIST (Debian package)",
        "apt-get install -y dataset-fashion-mnist",
    ).parent


@pytest.fixture(autouse=True)
def _isolated_data_root(tmp_path_factory, monkeypatch):
    """No test reads or writes ./data by accident: the default data root is an empty folder."""
    monkeypatch.setenv("NOISYKD_DATA_ROOT", str(tmp_path_factory.mktemp("empty-data-root")))


def interrupt_after(monkeypatch, epoch: int) -> None:
    """Make the engine die (KeyboardInterrupt) right after saving epoch ``epoch``'s
    checkpoint: a simulated kill between two epochs."""
    from benchmark.training import engine

    real = engine.save_checkpoint

    def save_then_die(path, state):
        real(path, state)
        if state["epoch"] == epoch:
            raise KeyboardInterrupt("simulated kill")

    monkeypatch.setattr(engine, "save_checkpoint", save_then_die)


def killed_then_resumed(monkeypatch, spec, epoch: int):
    """Train ``spec`` until it is killed right after epoch ``epoch``'s checkpoint, check the
    checkpoint is there, then run it again (the resume) and return its metrics."""
    import pytest

    from benchmark.training.checkpoint import default_checkpoint_dir
    from benchmark.training.run import run

    interrupt_after(monkeypatch, epoch)
    with pytest.raises(KeyboardInterrupt):
        run(spec)
    assert (default_checkpoint_dir(spec.out_dir) / "checkpoint.pt").exists()
    monkeypatch.undo()
    return run(spec)
