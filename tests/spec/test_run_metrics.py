"""metrics.json is read and written through one pair of functions that hold it to the
declared schema: a bad file is one line naming it, and a bad record is never written."""

import json

import pytest

from benchmark.core.errors import UserError
from benchmark.spec.run_metrics import read_metrics, write_metrics
from tests.helpers import bundle_metrics


def test_a_good_record_round_trips(tmp_path):
    m = bundle_metrics("student", "d0", "symmetric_0.20", 0, b"labels", 0.75)
    path = tmp_path / "metrics.json"
    write_metrics(path, m)
    assert read_metrics(path, "student") == m == json.loads(path.read_text())


@pytest.mark.parametrize(("change", "words"), [
    ({"test_acc_last": 1.5}, "test_acc_last"),
    ({"test_acc_best_val": "0.9"}, "test_acc_best_val"),
    ({"best_epoch": True}, "best_epoch"),
    ({"spec": None}, "spec"),
])
def test_a_bad_record_is_refused_and_never_written(tmp_path, change, words):
    m = {**bundle_metrics("student", "d0", "symmetric_0.20", 0, b"labels", 0.75), **change}
    path = tmp_path / "metrics.json"
    with pytest.raises(UserError, match=words) as err:
        write_metrics(path, m)
    assert str(path) in str(err.value) and not path.exists()
    path.write_text(json.dumps(m))
    with pytest.raises(UserError, match=words):
        read_metrics(path)


def test_an_unreadable_file_is_one_line_naming_it(tmp_path):
    path = tmp_path / "metrics.json"
    path.write_text("{not json")
    with pytest.raises(UserError) as err:
        read_metrics(path)
    assert str(err.value).startswith(f"{path}: unreadable metrics.json (")
    with pytest.raises(UserError, match="unreadable metrics.json"):
        read_metrics(tmp_path / "missing" / "metrics.json")
    m = bundle_metrics("teacher", "d0", "symmetric_0.20", 0, b"labels", 0.75)
    path.write_text(json.dumps(m))
    with pytest.raises(UserError, match="kind"):
        read_metrics(path, "student")  # a teacher's record where a student's is expected


def test_the_record_reads_each_field_from_its_own_key(tmp_path):
    """Every typed field of RunMetrics is the file's own value: distinct values per key, so
    a field reading another key (or a default instead of the value) fails."""
    m = bundle_metrics("student", "d0", "symmetric_0.20", 3, b"labels", 0.75)
    m.update({"test_acc_best_val": 0.61, "test_acc_last": 0.62, "val_acc_best": 0.63,
              "val_acc_last": 0.64, "best_epoch": 2, "epochs": 5, "config_hash": "abc",
              "run_id": "runs/x", "provenance": {"git": {"commit": "c0ffee"}}})
    m["spec"]["method"] = {"name": "fixed_alpha", "hparams": {"alpha": 0.3}}
    m["spec"]["teachers"] = [{"arch": "mlp_8", "config_hash": "t1"}]
    path = tmp_path / "metrics.json"
    write_metrics(path, m)
    r = read_metrics(path, "student")
    assert (r.kind, r.config_hash, r.run_id, r.seed) == ("student", "abc", "runs/x", 3)
    assert (r.test_acc_best_val, r.test_acc_last, r.val_acc_best, r.val_acc_last) == (
        0.61, 0.62, 0.63, 0.64)
    assert (r.best_epoch, r.epochs, r.method, r.hparams) == (2, 5, "fixed_alpha",
                                                            {"alpha": 0.3})
    assert r.teachers == [{"arch": "mlp_8", "config_hash": "t1"}]
    assert r.labels == m["spec"]["labels"] and r.git == {"commit": "c0ffee"}
    del m["spec"]["method"], m["spec"]["teachers"], m["provenance"], m["config_hash"]
    write_metrics(path, m)
    r = read_metrics(path)  # a teacher-free run, no provenance, no hash: the documented defaults
    assert (r.method, r.hparams, r.teachers, r.git, r.config_hash) == ("ce", {}, [], {}, None)


def test_a_damaged_kept_copy_is_not_restored(tmp_path):
    """A finished run's kept copy is restored only when its metrics.json reads and holds the
    run's spec hash: damaged, off the schema or another spec's, nothing is linked back."""
    from benchmark.spec.run_metrics import read_metrics_or_none
    from benchmark.training.run import restore_finished

    keep, out = tmp_path / "keep", tmp_path / "out"
    keep.mkdir()
    (keep / "log.csv").write_text("epoch\n")
    m = {**bundle_metrics("student", "d0", "symmetric_0.20", 0, b"labels", 0.75),
         "config_hash": "h1"}
    for text in ("{not json", json.dumps({**m, "test_acc_last": 2.0})):
        (keep / "metrics.json").write_text(text)
        assert read_metrics_or_none(keep / "metrics.json") is None
        assert not restore_finished(keep, out, "h1") and not out.exists()
    (keep / "metrics.json").write_text(json.dumps(m))
    assert not restore_finished(keep, out, "h2") and not out.exists()
    assert restore_finished(keep, out, "h1")
    assert (out / "log.csv").read_text() == "epoch\n" and read_metrics(out / "metrics.json") == m
