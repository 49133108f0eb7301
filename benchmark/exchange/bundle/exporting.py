"""Export a study (or part of it) to one bundle file with a manifest of every file."""

from __future__ import annotations

import io
import json
import tarfile
import time
from pathlib import Path, PurePosixPath

from benchmark.analysis import alpha_summary
from benchmark.core.atomic import atomic_path
from benchmark.core.errors import UserError
from benchmark.core.layout import CONFIG_FILE, PLAN_FILE, StudyLayout
from benchmark.exchange import studylog
from benchmark.exchange.bundle.common import (
    ALPHA_MODES,
    FORMAT,
    MANIFEST,
    RUN_FILES,
    TEACHER_FILES,
    TEACHER_MODELS,
    VERSION,
    Filters,
    sha256_bytes,
)

# ---- export ---------------------------------------------------------------------------------


def study_files(results: Path, filters: Filters, with_teachers: bool,
                teachers_only: bool) -> list[str]:
    """The files a bundle of ``results`` holds, relative to it, sorted."""
    results = Path(results)
    out = []
    runs = [] if teachers_only else [
        d for d in StudyLayout.of(results).run_dirs() if (d / "metrics.json").is_file()
        and filters.keep(d.relative_to(results).parts)]
    for d in runs:
        out += [str((d / n).relative_to(results)) for n in RUN_FILES if (d / n).is_file()]
    names = TEACHER_FILES + (TEACHER_MODELS if with_teachers else ())
    teachers = [d for d in StudyLayout.of(results).teacher_dirs()
                if (d / "metrics.json").is_file() and filters.keep(d.relative_to(results).parts)]
    for d in teachers:
        out += [str((d / n).relative_to(results)) for n in names if (d / n).is_file()]
    labels = [p for p in StudyLayout.of(results).labels_files()
              if filters.keep(("labels",) + p.relative_to(results).parts[1:3])]
    out += [str(p.relative_to(results)) for p in labels]
    datasets = {p.relative_to(results).parts[1] for p in labels}  # not runs/<dataset>-authors
    out += [f"data/{d}.json" for d in sorted(datasets)
            if (results / "data" / f"{d}.json").is_file()]
    return sorted(out)


def _run_record(rel: str, metrics: dict) -> dict:
    prov = metrics.get("provenance", {})
    return {"path": str(PurePosixPath(rel).parent), "kind": metrics.get("kind"),
            "config_hash": metrics.get("config_hash"), "git": prov.get("git"),
            "versions": prov.get("versions"), "device": prov.get("device")}


def _filtered_plan(results: Path, filters: Filters) -> bytes:
    """The study's plan with the runs the filters keep, planned runs that did not finish
    included (so that an import still reports them missing)."""
    data = json.loads((results / PLAN_FILE).read_text())
    if isinstance(data, list):
        data = {"runs": data}
    runs = []
    for entry in data["runs"]:
        parts = PurePosixPath(entry).parts
        rel = PurePosixPath(*parts[1:]) if parts and parts[0] == "results" else PurePosixPath(entry)
        if len(rel.parts) >= 5 and filters.keep(rel.parts):
            runs.append(str(rel))
    data["runs"] = runs
    return (json.dumps(data, indent=1) + "\n").encode()


def export(results: Path, out: Path, filters: Filters = Filters(), with_teachers: bool = False,
           teachers_only: bool = False, config: Path | None = None,
           alpha: str = "full") -> dict:
    """Write the bundle of ``results`` to ``out`` (atomically); returns its manifest.
    ``alpha="summary"`` carries each ALM run's alpha_summary.json (computed from its
    alpha.npz) instead of the per-instance weights: enough for every table and figure, a
    fraction of the size."""
    results = Path(results)
    if not results.is_dir():
        raise UserError(f"results folder {results} does not exist")
    if not (results / "runs").is_dir() and not (results / "teachers").is_dir():
        raise UserError(f"{results} is not a study folder (no runs/ or teachers/ in it): "
                        "name one, e.g. results/default")
    config_path = Path(config) if config else results / CONFIG_FILE
    if not config_path.is_file():
        raise UserError(f"{config_path} does not exist: the workflow writes it since bundles "
                        "exist (rerun the same snakemake command once: it trains nothing), or "
                        "pass --config FILE (the config the study was run with)")
    if not teachers_only and not (results / PLAN_FILE).is_file():
        raise UserError(f"{results / PLAN_FILE} does not exist: rerun the same "
                        "snakemake command once (it trains nothing)")
    if alpha not in ALPHA_MODES:
        raise UserError(f"--alpha {alpha!r}: one of {', '.join(ALPHA_MODES)}")
    if not str(out).endswith(".tar.gz"):
        raise UserError(f"--out {out}: a bundle is a .tar.gz file")
    files = study_files(results, filters, with_teachers, teachers_only)
    if not any(f.endswith("metrics.json") for f in files):
        raise UserError(f"nothing to export from {results} with filters {filters.as_dict()}")
    payload: dict[str, bytes] = {CONFIG_FILE: config_path.read_bytes()}
    if not teachers_only:
        payload[PLAN_FILE] = (_filtered_plan(results, filters) if filters.as_dict()
                                         else (results / PLAN_FILE).read_bytes())
    for rel in files:  # read once: the bytes hashed are the bytes archived
        path = PurePosixPath(rel)
        if alpha == "summary" and path.name == "alpha.npz":
            summary = alpha_summary.summarise_file(results / rel)
            if summary is not None:  # no refresh: nothing to summarise
                payload[str(path.with_name(alpha_summary.SUMMARY_NAME))] = (
                    json.dumps(summary, indent=1) + "\n").encode()
            continue
        if path.name == alpha_summary.SUMMARY_NAME and (results / path.parent / "alpha.npz"
                                                        ).is_file():
            continue  # the npz (or the summary made from it now) speaks for the run
        payload[rel] = (results / rel).read_bytes()
    entries, runs = {}, []
    for rel, data in sorted(payload.items()):
        entries[rel] = {"sha256": sha256_bytes(data), "size": len(data)}
        if rel.endswith("metrics.json"):
            runs.append(_run_record(rel, json.loads(data)))
    from benchmark import __version__
    from benchmark.core.provenance import git_revision

    manifest = {"format": FORMAT, "version": VERSION, "study": results.resolve().name,
                "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "noisykd": __version__, "exported_by": {"git": git_revision()},
                "filters": filters.as_dict(), "with_teachers": with_teachers,
                "teachers_only": teachers_only, "alpha": alpha,
                "files": dict(sorted(entries.items())),
                "runs": runs,
                # how the study was run: every snakemake command with its code revision,
                # versions and wall time (results/<study>/invocations.json, benchmark/studylog)
                "invocations": [] if teachers_only else studylog.read_log(results)}
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out) as tmp, tarfile.open(tmp, "w:gz") as tar:
        _add_bytes(tar, MANIFEST, (json.dumps(manifest, indent=1) + "\n").encode())
        for rel in sorted(entries):
            _add_bytes(tar, rel, payload[rel])
    return manifest


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = len(data), int(time.time()), 0o644
    tar.addfile(info, io.BytesIO(data))


