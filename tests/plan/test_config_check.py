"""Config mistakes explained in one line, with what is allowed."""

import pytest
import yaml

from benchmark.plan.config_check import explain
from tests.conftest import REPO_ROOT

SCHEMA = yaml.safe_load((REPO_ROOT / "workflows/config/schema.yaml").read_text())
DEFAULT = yaml.safe_load((REPO_ROOT / "workflows/config/default.yaml").read_text())


@pytest.mark.parametrize(("change", "expected"), [
    ({"seed": [1]}, "unknown key 'seed' at the top level; did you mean 'seeds'?"),
    ({"lr": 0.1}, "unknown key 'lr' at the top level; 'lr' is a key of datasets[].train"),
    ({"xyzzy": 1},
     "unknown key 'xyzzy' at the top level; allowed: analysis, cifar_n_dir, data_root, "),
    ({"datasets": [{"name": "digits", "student": "mlp_8", "trian": {}}]},
     "unknown key 'trian' at datasets[0]; did you mean 'train'?"),
    ({"setups": ["single", "multy"]},
     "setups[1]: 'multy' is not one of single, multi, self (did you mean 'multi'?)"),
    ({"seeds": "a"}, "seeds: 'a' is not of type 'array'"),
])
def test_one_line_names_the_key_and_what_is_allowed(change, expected):
    line = explain({**DEFAULT, **change}, SCHEMA)
    assert line.startswith(expected) and "\n" not in line


@pytest.mark.parametrize("name", ["default", "paper", "fmnist", "authors_synthetic"])
def test_shipped_configs_are_valid(name):
    cfg = yaml.safe_load((REPO_ROOT / f"workflows/config/{name}.yaml").read_text())
    assert explain(cfg, SCHEMA) is None


def test_a_method_name_is_the_catalogs_to_check():
    """The schema lists no method names (methods/catalog.py is the one list): the planner
    refuses an unknown one in one line naming the key, the known methods and the nearest."""
    from benchmark.core.errors import UserError
    from benchmark.plan import grid

    assert explain({**DEFAULT, "methods": [{"name": "kd2"}]}, SCHEMA) is None
    with pytest.raises(UserError) as err:
        grid.plan({**DEFAULT, "methods": ["ce", {"name": "kd2"}]})
    line = str(err.value)
    assert line.startswith("config key 'methods[1]': unknown method 'kd2'; known: ce, kd, ")
    assert line.endswith("(did you mean 'kd'?)") and "\n" not in line
