"""The method catalog is the one list of methods: the schema, the registry, the planner, the
cost model and the declared comparisons agree with it, and a class cannot declare a fact its
entry holds."""

from __future__ import annotations

import math

import pytest
import yaml

from benchmark.analysis import completeness
from benchmark.core.errors import UserError
from benchmark.plan import cost_model, grid
from methods import base, catalog
from methods.catalog import CATALOG
from tests.conftest import REPO_ROOT
from tests.helpers import TINY

SCHEMA = yaml.safe_load((REPO_ROOT / "workflows/config/schema.yaml").read_text())


def _hparams_for(name: str) -> dict:
    e = CATALOG[name]
    return {e.selected: 0.5} if e.selected else {}


def test_the_schema_leaves_method_names_to_the_catalog():
    """Adding a method is its file plus its catalog entry: the schema lists no method names
    (the planner checks them against the catalog, naming the known ones), and its sweep keys
    are the catalog's."""
    items = SCHEMA["properties"]["methods"]["items"]["oneOf"]
    assert items[0] == {"type": "string", "description": "a method of methods/catalog.py"}
    assert "enum" not in items[1]["properties"]["name"]
    sweeps = {f"{e.selected}s" for e in CATALOG.values() if e.selected}
    assert sweeps == set(items[1]["properties"]) - {"name", "hparams"}
    with pytest.raises(UserError, match="unknown method 'nope'; known: " + ", ".join(CATALOG)):
        grid.plan({**TINY, "methods": ["kd", "nope"]})


def test_every_registered_class_has_its_entry_facts():
    base._import_methods()
    assert set(CATALOG) <= set(base.METHODS)
    for name, cls in base.METHODS.items():  # the rest: test-only methods with their own entry
        assert cls.entry is (CATALOG[name] if name in CATALOG else cls.entry), name
        assert name in CATALOG or name.startswith("test_"), name
    for name, e in CATALOG.items():
        m = base.build_method(name, **_hparams_for(name))
        assert m.uses_teachers is e.takes_teachers(), name
        assert m.uses_clean_labels is e.uses_clean_labels, name
        assert m.hparams == {**e.defaults, **_hparams_for(name)}, name
        assert m.train_set in ("train", "meta", "union"), name
    # a hyper-parameter that frees a run of teachers does so for the built method too
    assert base.build_method("mwnet", loss="ce").uses_teachers is False
    assert CATALOG["mwnet"].takes_teachers({"loss": "ce"}) is False
    assert CATALOG["mwnet"].takes_teachers({"loss": "kd"}) is True


def test_entries_are_consistent():
    ranks = [e.baseline_rank for e in CATALOG.values() if not e.compared]
    assert sorted(ranks) == list(range(len(ranks)))
    assert all(e.compared for e in CATALOG.values() if e.is_alm)
    shorts = [e.short for e in CATALOG.values() if not e.compared]
    assert all(shorts) and len(set(shorts)) == len(shorts)
    for e in CATALOG.values():
        assert e.family in catalog.FAMILIES, e.name
        assert e.cost in catalog.COST_CLASSES, e.name
        assert set(e.defaults) == set(e.rules), e.name
        assert (e.cost == "refresh") == (e.priced_as is not None), e.name
        assert not e.convex or e.is_alm, e.name
        assert not e.selected or e.selected in e.rules, e.name
        assert e.min_teachers >= 1 and (e.min_teachers == 1 or e.uses_teachers), e.name
        assert not e.mixes_targets or e.uses_teachers, e.name
        assert e.trust_from_label is None or e.family not in catalog.FAMILIES[:5], e.name
    assert catalog.BASELINE_ORDER[:3] == ("kd", "fixed_alpha", "ce")
    assert set(catalog.BASELINE_ORDER) | set(catalog.COMPARED_METHODS) == set(CATALOG)
    assert set(catalog.ALM_METHODS) < set(catalog.COMPARED_METHODS)
    # the issue-29 contrast: which rules set their trust from the given label
    reads = {n for n, e in CATALOG.items() if e.trust_from_label}
    assert reads == {"wsld", "dkd", "camkd"}
    assert {n for n, e in CATALOG.items() if e.trust_from_label is False} == {
        "bootstrap", "proselflc", "ebkd", "aekd", "lskd"}


def test_the_planner_plans_every_catalog_method_with_its_facts():
    config = {
        "datasets": [{"name": "digits", "student": "mlp_16", "teacher": "mlp_32",
                      "multi_teachers": ["mlp_16", "mlp_32"],
                      "train": {"epochs": 3, "batch_size": 256, "lr": 0.1}}],
        "noise": [{"type": "symmetric", "rates": [0.2]}],
        "methods": [{"name": n, **({f"{CATALOG[n].selected}s": [0.5]}
                                   if CATALOG[n].selected else {}),
                     **({"hparams": {"meta_start": 1, "meta_every": 1}}
                        if "meta_start" in CATALOG[n].defaults else {})}
                    for n in CATALOG],
        "seeds": [0],
    }
    p = grid.plan(config)
    planned = {r.method for r in p.student_runs}
    assert planned == set(CATALOG)
    for r in p.student_runs:
        takes = CATALOG[r.method].takes_teachers(dict(r.hparams))
        assert bool(r.teachers) is takes, r.out
        assert ("/none/" in r.out) is (not takes), r.out
    # the declared comparisons: every rule under test (the ALM methods and the zoo) against
    # every baseline, in the catalog's order
    alm, bases = completeness.Plan.declared(planned)
    assert alm == catalog.COMPARED_METHODS
    assert bases == catalog.BASELINE_ORDER


@pytest.mark.parametrize("name", list(CATALOG))
def test_the_cost_model_prices_every_method(name):
    students = {"almkd_epoch_over_kd": 1.5, "almkd_refresh_over_kd_epoch": 0.25,
                "amal_epoch_over_kd": 1.25, "amal_refresh_over_kd_epoch": 0.5,
                "almkd_full_over_kd_per_step": 3.0}
    hp = {"meta_start": 2, "meta_every": 2} if "meta_start" in CATALOG[name].defaults else {}
    f = cost_model.method_factor(name, hp, 10, students)
    assert math.isfinite(f) and f >= 1.0
    e = CATALOG[name]
    expected = {"kd": 1.0, "lookahead": 3.0}.get(e.cost)
    if e.cost == "refresh":  # epochs plus 4 refreshes (2, 4, 6, 8) over 10 epochs
        ep, rf = (students[f"{e.priced_as}_epoch_over_kd"],
                  students[f"{e.priced_as}_refresh_over_kd_epoch"])
        expected = ep + rf * 4 / 10
    if e.cost == "exact_lookahead":  # 2 plain epochs, 8 with a look-ahead step each
        expected = (2 + 8 * 3.0) / 10
    assert f == pytest.approx(expected)


def test_a_class_cannot_declare_what_its_entry_holds(monkeypatch):
    monkeypatch.setattr(base, "METHODS", {})  # a fresh registry

    class Declares(base.Method):
        name = "kd"
        uses_clean_labels = True

    with pytest.raises(ValueError, match="catalog entry holds"):
        base.register_method(Declares)

    class Unlisted(base.Method):
        name = "not_in_the_catalog"

    with pytest.raises(ValueError, match="no entry in methods/catalog.py"):
        base.register_method(Unlisted)

    class Plain(base.Method):
        name = "ce_clean"

    assert base.register_method(Plain).uses_clean_labels is True
    assert Plain.uses_teachers is False and Plain.hparam_defaults == {}


def test_config_defaults_and_words_come_from_the_schema():
    """The schema is the one place a config key's default and allowed words are written:
    the training spec, the runtime block, the planner's key lists and the CLI's help read it."""
    import dataclasses

    from benchmark.cli import build_parser
    from benchmark.data.labels import DEFAULT_VAL_FRACTION
    from benchmark.plan import config as plan_config
    from benchmark.spec import schema, trainconfig
    from benchmark.spec.protocol import PROTOCOLS

    train = SCHEMA["$defs"]["train"]["properties"]
    fields = {f.name: f.default for f in dataclasses.fields(trainconfig.TrainConfig)}
    for key, spec in train.items():
        want = spec["default"]
        assert fields[key] == (tuple(want) if isinstance(want, list) else want), key
    runtime = SCHEMA["properties"]["runtime"]["properties"]
    assert plan_config.RUNTIME_DEFAULTS == {k: v["default"] for k, v in runtime.items()}
    for key in set(runtime) & set(fields):
        assert fields[key] == runtime[key]["default"], key
    assert trainconfig.SCHEDULES == tuple(train["schedule"]["enum"])
    assert trainconfig.AUGMENTS == tuple(train["augment"]["enum"])
    assert trainconfig.COMPILE_MODES == tuple(runtime["compile_mode"]["enum"])
    assert PROTOCOLS == tuple(SCHEMA["$defs"]["protocol"]["enum"])
    assert fields["protocol"] == SCHEMA["$defs"]["protocol"]["default"]
    assert plan_config.TOP_KEYS == set(SCHEMA["properties"])
    assert plan_config.DATASET_KEYS == set(SCHEMA["properties"]["datasets"]["items"]
                                           ["properties"])
    assert DEFAULT_VAL_FRACTION == SCHEMA["properties"]["val_fraction"]["default"]
    assert schema.SCHEMA_PATH == REPO_ROOT / "workflows" / "config" / "schema.yaml"
    teacher = build_parser()._subparsers._group_actions[0].choices["teacher"]
    helps = {a.dest: a.help for a in teacher._actions}
    assert helps["schedule"] == ", ".join(train["schedule"]["enum"])
    assert helps["augment"] == ", ".join(train["augment"]["enum"])


def test_registration_refuses_what_it_must_and_records_the_entry(monkeypatch):
    from methods.catalog import MethodEntry

    monkeypatch.setattr(base, "METHODS", {})

    class Nameless(base.Method):
        pass

    with pytest.raises(ValueError, match="missing or registered twice"):
        base.register_method(Nameless)

    class KD(base.Method):
        name = "kd"

    assert base.register_method(KD) is KD
    assert base.METHODS == {"kd": KD} and KD.entry is CATALOG["kd"]

    class KDAgain(base.Method):
        name = "kd"

    with pytest.raises(ValueError, match="registered twice"):
        base.register_method(KDAgain)
    own = MethodEntry("test_own", "label", {}, {}, uses_teachers=False)

    class Own(base.Method):
        name = "test_own"

    class Misnamed(base.Method):
        name = "test_misnamed"

    class Listed(base.Method):
        name = "ce"

    for cls, e in ((Misnamed, own), (Listed, MethodEntry("ce", "label", {}, {}))):
        with pytest.raises(ValueError, match="an own entry is for test-only methods"):
            base.register_method(cls, entry=e)
    assert base.register_method(entry=own)(Own) is Own
    assert Own.entry is own and base.METHODS["test_own"] is Own and Own.uses_teachers is False

    class Declares(base.Method):
        name = "kd_union"
        uses_teachers = True
        uses_clean_labels = True

    with pytest.raises(ValueError) as err:
        base.register_method(Declares)
    assert str(err.value) == ("method 'kd_union' declares uses_teachers, uses_clean_labels: "
                              "its catalog entry holds them")


def test_hyper_parameter_checks_say_exactly_what_is_wrong():
    from benchmark.core.errors import UserError as Err

    def line(method, hp, **kw):
        with pytest.raises(Err) as err:
            catalog.check_hparams(method, hp, **kw)
        return str(err.value)

    assert line("kd", {"b": 1, "a": 2}) == ("method 'kd': unknown hyper-parameter(s) a, b; "
                                            "known: T, kd_weight")
    assert line("ce", {"a": 1}) == "method 'ce': unknown hyper-parameter(s) a; known: none"
    assert line("kd", {"T": -1}) == "method 'kd': needs hyper-parameter T > 0 (a number), got -1"
    # a null default that a run must set: refused unless the caller sets it itself
    assert line("fixed_alpha", {}) == ("method 'fixed_alpha': needs hyper-parameter alpha in "
                                       "[0, 1] (a number), got None (its default: a run must "
                                       "set it)")
    catalog.check_hparams("fixed_alpha", {}, complete=False)
    catalog.check_hparams("fixed_alpha", {"alpha": 0.5})
    assert line("kd2", {}) == ("unknown method 'kd2'; known: " + ", ".join(CATALOG)
                               + " (did you mean 'kd'?)")
    assert catalog.unknown_method("zzzzzz") == "unknown method 'zzzzzz'; known: " + ", ".join(
        CATALOG)
    assert catalog.unknown_method(5) == "unknown method 5; known: " + ", ".join(CATALOG)
    with pytest.raises(Err, match="unknown method 'nope'"):
        catalog.method_uses_teachers("nope")
    assert catalog.method_uses_teachers("ce") is False
    assert catalog.method_uses_teachers("l2rw", {"loss": "ce"}) is False
    assert catalog.method_uses_teachers("l2rw") is True


def test_allowed_values_are_checked_and_worded_exactly():
    from methods.hparam_types import Choice, Int, Real, shown

    assert Real(0, 1, high_open=True).ok(0.999) and not Real(0, 1, high_open=True).ok(1)
    assert Real(0, 1).ok(1) and Real(0, 1).ok(0) and not Real(0, 1, low_open=True).ok(0)
    assert not Real(0, 1).ok(True) and not Real(0).ok(float("inf")) and Real(0).ok(10**400)
    assert Real(0, 1).allowed("x") == "x in [0, 1] (a number)"
    assert Real(0, 1, low_open=True, high_open=True).allowed("x") == "x in (0, 1) (a number)"
    assert Real(0, low_open=True).allowed("T") == "T > 0 (a number)"
    assert Real(0, none="the default").allowed("w") == "w >= 0 (a number) or null (the default)"
    assert Real(high=1, high_open=True).allowed("w") == "w < 1 (a number)"
    assert Real(high=1).allowed("w") == "w <= 1 (a number)"
    assert Real(0, 0, text="= 0 (no share)").allowed("s") == "s = 0 (no share)"
    assert Int(1).allowed("n") == "n >= 1 (an integer)"
    assert Int(0, none="all").allowed("n") == "n >= 0 (an integer) or null (all)"
    assert Int(1, none="all").ok(None) and not Int(1).ok(None) and not Int(1).ok(1.0)
    assert Choice(("a", "b")).allowed("c") == "c one of a, b"
    assert shown("1e3") == "'1e3' (YAML reads 1e3 as text: write 1.0e3)"
    assert shown("1E3") == "'1E3' (YAML reads 1e3 as text: write 1.0e3)"
    assert shown(" 12 ") == "' 12 ' (text, not a number)"
    assert shown("abc") == "'abc'" and shown(3) == "3"
