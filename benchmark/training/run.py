"""``noisykd teacher`` and ``noisykd student``: one training run from spec to metrics.json.

Order of work: everything that can be checked without data (training keys, method and its
hyper-parameters, labels file, teachers' metadata) is checked first; a finished run (its
metrics.json present with the same spec hash) returns at once; a run another process holds
is refused; only then is data loaded and a model trained. metrics.json is written last and
atomically: its presence means the run finished.
"""

from __future__ import annotations

import datetime as dt
import functools
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from benchmark.core.errors import UserError
from benchmark.core.hashing import spec_hash
from benchmark.core.layout import METRICS, split_results
from benchmark.core.provenance import provenance
from benchmark.core.seeds import derive_seed
from benchmark.data.labels import LabelsFile, read_labels
from benchmark.plan.specs import RunSpec
from benchmark.spec.run_metrics import read_metrics, read_metrics_or_none, write_metrics
from benchmark.spec.trainconfig import TrainConfig

METRICS_SCHEMA_VERSION = 1
TEACHER_MODEL_FILES = {"last": "model_last.pt", "best_val": "model_best.pt"}


@dataclass(frozen=True)
class RunOptions:
    """How a run trains here, not what it is (none of it is in its spec or hash)."""

    checkpoint_dir: Path | None = None  # default: beside the run folder (checkpoint.py)
    threads: int | None = None  # torch CPU threads
    progress: bool | None = None  # a progress bar (None: on a terminal)
    run_id: str | None = None  # default: its path under the study folder
    #: the teachers' logits computed once and shared by the process's runs where they are
    #: exact (benchmark/training/teacher_cache.py); False: a teacher pass per batch, today's
    #: path, the same arithmetic (runtime key share_teacher_work; docs/training.md)
    share_teacher_work: bool = True


def default_run_id(out: Path) -> str:
    """The run's path under its study folder (runs/... or teachers/...)."""
    split = split_results(out)
    return "/".join(split[1].parts) if split else str(out)


def _labels_identity(lf: LabelsFile) -> dict:
    ident = {"file_sha256": lf.sha256, "noise": lf.meta["noise"]["id"],
             "seed": lf.meta["seed"], "dataset_fingerprint": lf.meta["dataset_fingerprint"]}
    if lf.meta.get("train_subset") is not None:  # only then: other runs keep their spec hash
        ident["train_subset"] = lf.meta["train_subset"]
    if lf.meta.get("n_select"):  # the clean splits (also in the file's sha256), named
        ident["clean_splits"] = {"n_meta": lf.meta["n_val"], "n_select": lf.meta["n_select"],
                                 "select_source": lf.meta["select_source"]}
    return ident


def _teacher_info(tdir: Path, which: str, req: RunSpec, lf: LabelsFile) -> dict:
    """A teacher's identity, checked against the student's labels before any training."""
    metrics_path = tdir / METRICS
    model_path = tdir / TEACHER_MODEL_FILES[which]
    for p in (metrics_path, model_path):
        if not p.is_file():
            raise UserError(f"teacher {tdir}: {p.name} missing (train it with `noisykd teacher`)")
    m = read_metrics(metrics_path)
    if not isinstance(m, dict) or m.get("kind") != "teacher":
        raise UserError(f"{metrics_path}: not a teacher's metrics")
    spec = m.get("spec")
    for key, value, kind in (("spec", spec, dict),
                             ("spec.arch", (spec or {}).get("arch") if isinstance(spec, dict)
                              else None, str),
                             ("config_hash", m.get("config_hash"), str)):
        if not isinstance(value, kind):
            raise UserError(f"{metrics_path}: teacher metrics without a valid {key!r} "
                            f"(got {value!r}); retrain the teacher or restore its files")
    if not isinstance(spec.get("labels", {}), dict):
        raise UserError(f"{metrics_path}: teacher metrics with a malformed 'spec.labels'")
    if spec.get("dataset") != req.dataset or \
            spec.get("labels", {}).get("dataset_fingerprint") != lf.meta["dataset_fingerprint"]:
        raise UserError(f"teacher {tdir} was trained on {spec.get('dataset')}, not on "
                        f"{req.dataset} (or on another copy of it)")
    if spec.get("labels", {}).get("seed") != lf.meta["seed"] or \
            spec.get("labels", {}).get("noise") != lf.meta["noise"]["id"] or \
            spec.get("labels", {}).get("train_subset") != lf.meta.get("train_subset"):
        raise UserError(f"teacher {tdir} was trained on labels "
                        f"{spec.get('labels', {}).get('noise')} seed "
                        f"{spec.get('labels', {}).get('seed')} (train subset "
                        f"{spec.get('labels', {}).get('train_subset')}), not on this run's "
                        f"{lf.meta['noise']['id']} seed {lf.meta['seed']} (train subset "
                        f"{lf.meta.get('train_subset')})")
    # the exact labels file, not only its metadata: a hand-made file with the same dataset,
    # seed, noise and subset but other labels is refused
    if spec.get("labels", {}).get("file_sha256") != lf.sha256:
        raise UserError(f"teacher {tdir} was trained on another labels file (sha256 "
                        f"{spec.get('labels', {}).get('file_sha256')}) than this run's "
                        f"{lf.path} (sha256 {lf.sha256}); retrain the teacher on "
                        "these labels")
    return {"dir": str(tdir), "arch": spec["arch"], "config_hash": m["config_hash"],
            "teacher_labels": spec.get("teacher_labels"), "checkpoint": which,
            "model_path": str(model_path)}


def build_spec(req: RunSpec, lf: LabelsFile, teachers: list[dict]) -> dict:
    spec = {
        "kind": req.kind,
        "dataset": req.dataset,
        "labels": _labels_identity(lf),
        "arch": req.arch,
        "num_classes": lf.meta["num_classes"],
        "seed": req.seed,
        "train": req.cfg.optimisation(),
    }
    if req.kind == "teacher":
        spec["teacher_labels"] = req.teacher_labels
    else:
        spec["method"] = {"name": req.method, "hparams": dict(req.hparams)}  # sorted pairs
        spec["teachers"] = [{k: t[k] for k in ("arch", "config_hash", "teacher_labels",
                                               "checkpoint")} for t in teachers]
    return spec


def _check_labels(req: RunSpec) -> LabelsFile:
    lf = read_labels(Path(req.labels))
    if lf.meta["dataset"] != req.dataset:
        raise UserError(f"{req.labels}: labels file is for {lf.meta['dataset']}, "
                        f"not for --dataset {req.dataset}")
    return lf


def run(req: RunSpec, options: RunOptions | None = None) -> dict | None:
    """Train one run; returns its metrics (None when it had already finished)."""
    opts = options or RunOptions()
    from methods import build_method

    if req.kind not in ("teacher", "student"):
        raise ValueError(req.kind)
    if req.teacher_labels not in ("noisy", "clean"):
        raise UserError(f"teacher_labels must be noisy or clean, got {req.teacher_labels!r}")
    if req.teacher_checkpoint not in TEACHER_MODEL_FILES:
        raise UserError(f"teacher_checkpoint must be last or best_val, got "
                        f"{req.teacher_checkpoint!r}")
    from benchmark.spec.protocol import resolve_hparams

    name = "ce" if req.kind == "teacher" else req.method
    # the protocol's preset under the user's values; the spec keeps what the user gave
    resolved = resolve_hparams(name, dict(req.hparams), req.cfg.protocol, req.dataset,
                               len(req.teachers))
    method = build_method(name, **resolved)
    if req.kind == "student" and method.uses_teachers and not req.teachers:
        raise UserError(f"method {req.method!r} needs --teacher DIR")
    if req.kind == "student" and not method.uses_teachers and req.teachers:
        raise UserError(f"method {req.method!r} uses no teacher; drop --teacher")
    lf = _check_labels(req)
    from benchmark.training.models import check_arch

    check_arch(req.arch, tuple(lf.meta["input_shape"]))
    teachers = [_teacher_info(Path(t), req.teacher_checkpoint, req, lf) for t in req.teachers]
    spec = build_spec(req, lf, teachers)
    chash = spec_hash(spec)
    run_id = opts.run_id or default_run_id(req.out_dir)
    metrics_path = req.out_dir / METRICS
    if metrics_path.exists():
        done = read_metrics(metrics_path)
        if done.config_hash == chash:
            print(f"run {run_id}: already finished ({metrics_path}); nothing to do",
                  file=sys.stderr)
            return None
        raise UserError(f"{metrics_path} exists for another spec ({done.config_hash} != "
                        f"{chash}); remove the run folder to retrain it")

    from benchmark.training.checkpoint import RunLock, default_checkpoint_dir

    ckpt_dir = (Path(opts.checkpoint_dir) if opts.checkpoint_dir
                else default_checkpoint_dir(req.out_dir))
    with RunLock(ckpt_dir, run_id):
        if restore_finished(ckpt_dir / FINISHED_DIR, req.out_dir, chash):
            print(f"run {run_id}: restored its finished outputs from {ckpt_dir / FINISHED_DIR} "
                  "(the workflow had removed them); not retraining", file=sys.stderr)
            return None
        metrics = _train(req, opts, lf, teachers, spec, chash, run_id, method, ckpt_dir)
        if req.kind == "student":
            metrics["method_hparams"] = dict(sorted(method.hparams.items()))
        publish(req.out_dir, ckpt_dir / FINISHED_DIR, metrics)
    return metrics


FINISHED_DIR = "finished"


def publish(out: Path, keep: Path, metrics: dict) -> None:
    """Finish a run: hard links to its files beside its checkpoint, then metrics.json.

    Snakemake deletes every declared output of a job it reruns; when a job trains several
    runs and is killed after some finished, those finished runs' files come back from
    ``keep`` instead of being trained again (links cost no disk space). metrics.json, the
    marker of a finished run, is written into ``keep`` first and linked into the run folder
    last, so a run folder with metrics.json always has its complete copy in ``keep``.
    """
    import shutil

    if keep.exists():
        shutil.rmtree(keep)
    keep.mkdir(parents=True)
    for f in out.iterdir():
        if f.is_file() and f.name != METRICS:
            _link(f, keep / f.name)
    write_metrics(keep / METRICS, metrics)
    _link(keep / METRICS, out / METRICS)


def _link(src: Path, dst: Path) -> None:
    """Atomically make ``dst`` the same file as ``src`` (a copy across filesystems)."""
    import shutil

    tmp = dst.parent / f".{dst.name}.link"
    tmp.unlink(missing_ok=True)
    try:
        os.link(src, tmp)
    except OSError:
        shutil.copy2(src, tmp)
    os.replace(tmp, dst)


def restore_finished(keep: Path, out: Path, chash: str) -> bool:
    kept = read_metrics_or_none(keep / METRICS)  # missing or damaged: nothing to restore
    if kept is None or kept.config_hash != chash:
        return False
    out.mkdir(parents=True, exist_ok=True)
    names = sorted(f.name for f in keep.iterdir() if f.is_file())
    for name in [n for n in names if n != METRICS] + [METRICS]:  # marker last
        _link(keep / name, out / name)
    return True


@functools.lru_cache(maxsize=2)
def _cached_dataset(name: str, data_root):
    """One load per process when a job trains several runs of one dataset."""
    from benchmark.data import load_dataset

    return load_dataset(name, data_root)


def _train(req, opts, lf, teachers, spec, chash, run_id, method, ckpt_dir) -> dict:
    import numpy as np
    import torch

    from benchmark.spec.protocol import raw_features
    from benchmark.training.checkpoint import CHECKPOINT_NAME
    from benchmark.training.device_data import DeviceData
    from benchmark.training.engine import Trainer, resolve_device, use_channels_last
    from benchmark.training.models import create_model
    from benchmark.training.teachers import load_teacher_model, save_model_file, train_agreement

    wall0 = time.perf_counter()
    if opts.threads:
        torch.set_num_threads(opts.threads)
    record = _cached_dataset(req.dataset, req.data_root)
    device = resolve_device(req.cfg.device)
    train_labels = req.teacher_labels if req.kind == "teacher" else "noisy"
    data = DeviceData(record, lf, device, augment=req.cfg.augment, train_labels=train_labels,
                      channels_last=use_channels_last(req.cfg, device),
                      raw_features=raw_features(req.cfg.protocol),
                      train_set=method.train_set if req.kind == "student" else "train")
    teacher_models = [load_teacher_model(Path(t["model_path"]), t, record, lf)
                      for t in teachers]
    if req.kind == "teacher":  # a `self` teacher never starts from the student's weights
        init_seed = derive_seed(req.seed, "teacher_init", req.arch, req.teacher_labels)
    else:  # identical for every method of one seed
        init_seed = derive_seed(req.seed, "student_init", req.arch)
    torch.manual_seed(init_seed)
    model = create_model(req.arch, record.num_classes, record.input_shape)
    out = req.out_dir
    store = None
    if opts.share_teacher_work and teachers:
        from benchmark.training.teacher_cache import SHARED

        store = SHARED.store((tuple((t["model_path"], t["config_hash"]) for t in teachers),
                              lf.sha256, req.dataset, str(req.data_root), data.train_set,
                              raw_features(req.cfg.protocol), data.channels_last, str(device)))
    trainer = Trainer(model=model, data=data, method=method, teachers=teacher_models,
                      cfg=req.cfg, seed=req.seed, role=req.kind, run_id=run_id,
                      spec_hash=chash, checkpoint_dir=ckpt_dir, log_path=out / "log.csv",
                      keep_best_state=req.kind == "teacher", progress=opts.progress,
                      teacher_store=store)
    result = trainer.fit()
    last, best = result.history[-1], result.best
    metrics = {
        "schema_version": METRICS_SCHEMA_VERSION,
        "kind": req.kind,
        "run_id": run_id,
        "config_hash": chash,
        "spec": spec,
        "epochs": len(result.history),
        "test_acc_last": last["test_acc"],
        "test_acc_best_val": best["test_acc"],
        "val_acc_best": best["val_acc"],
        "val_acc_last": last["val_acc"],
        "best_epoch": best["epoch"],
        "train_loss_last": last["train_loss"],
        "train_acc_last": last["train_acc"],
        "train_time_s": result.train_time_s,
        "images_per_s": result.images_per_s,
        "wall_time_s": time.perf_counter() - wall0,
        "runtime": {**{k: v for k, v in req.cfg.to_dict().items()
                       if k not in TrainConfig.OPTIMISATION},
                    "share_teacher_work": trainer.teacher_outputs is not None},
        "provenance": provenance(result.device),
        "finished_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }
    if req.kind == "teacher":
        meta = {"arch": req.arch, "num_classes": record.num_classes,
                "input_shape": list(record.input_shape), "config_hash": chash,
                "dataset_fingerprint": lf.meta["dataset_fingerprint"]}
        save_model_file(out / TEACHER_MODEL_FILES["last"], model.state_dict(), meta)
        save_model_file(out / TEACHER_MODEL_FILES["best_val"], result.best_state, meta)
        metrics["teacher"] = train_agreement(trainer, data)
    from benchmark.core.atomic import write_npz_atomic

    for name, arrays in method.artifacts().items():
        write_npz_atomic(out / name, {k: np.asarray(v) for k, v in arrays.items()})
    if not req.cfg.keep_checkpoint:
        (Path(ckpt_dir) / CHECKPOINT_NAME).unlink(missing_ok=True)
    return metrics
