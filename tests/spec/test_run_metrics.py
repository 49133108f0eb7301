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
