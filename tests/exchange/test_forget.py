"""`noisykd forget`: checks every argument first, removes run and checkpoint folders."""

import fcntl

import pytest

from benchmark.cli import main
from tests.helpers import make_run as make

RUN = "results/default/runs/digits/symmetric_0.40/single-x/kd/seed3"
TEACHER = "results/default/teachers/digits/symmetric_0.40/mlp_8/seed3"


def test_forget_removes_the_run_and_its_checkpoints(tmp_path, capsys):
    run, ckpt = make(tmp_path, RUN)
    teacher, tckpt = make(tmp_path, TEACHER)
    other, octk = make(tmp_path, RUN.replace("seed3", "seed4"))
    assert main(["forget", str(run), str(teacher)]) == 0
    assert not run.exists() and not ckpt.exists() and not teacher.exists()
    assert not tckpt.exists() and other.exists() and octk.exists()
    out = capsys.readouterr().out
    assert f"forgot {run} and {ckpt}" in out and "students are retrained" in out


@pytest.mark.parametrize("bad", ["results/default/runs/digits/symmetric_0.40", "elsewhere/seed1",
                                 "results/default/runs/digits/symmetric_0.40/single-x/kd/seed9"])
def test_a_bad_argument_removes_nothing(tmp_path, capsys, bad):
    run, ckpt = make(tmp_path, RUN)
    assert main(["forget", str(run), str(tmp_path / bad)]) == 2
    assert str(tmp_path / bad) in capsys.readouterr().err
    assert run.exists() and ckpt.exists()


def test_a_run_that_is_training_is_not_removed(tmp_path, capsys):
    run, ckpt = make(tmp_path, RUN)
    with open(ckpt / "lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        assert main(["forget", str(run)]) == 2
    assert "is training now" in capsys.readouterr().err and run.exists()
    assert main(["forget", str(run)]) == 0  # lock released: a stale lock file is no obstacle
