"""Import a verified bundle into a study folder, all or nothing (staged beside the target),
re-stamp an imported study, and open a study or bundle for reading."""

from __future__ import annotations

import errno
import os
import shutil
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from benchmark.core import layout
from benchmark.core.errors import UserError
from benchmark.core.hashing import file_sha256
from benchmark.core.layout import StudyLayout
from benchmark.exchange.bundle.common import Limits, size_text
from benchmark.exchange.bundle.verifying import WriteFailed, counts, labels_file_of, scan
from benchmark.spec.run_metrics import read_metrics_or_none

# ---- import ---------------------------------------------------------------------------------


def _blocked(results: Path, rel: str) -> str | None:
    """Why ``results/rel`` cannot be written as a plain file, or None."""
    dest = results / rel
    for parent in [results, *(results / p for p in PurePosixPath(rel).parents
                              if str(p) != ".")]:
        if parent.is_symlink():
            return f"{parent} is a link"
        if parent.exists() and not parent.is_dir():
            return f"{parent} exists and is not a folder"
    if dest.is_symlink() or (dest.exists() and not dest.is_file()):
        return f"{dest} exists and is not a plain file"
    return None


def _survey(results: Path, manifest: dict) -> tuple[list[str], list[str], int]:
    """What importing the manifest's files into ``results`` means: (clashes, files to
    write, files already there with the same content)."""
    clashes, todo, same = [], [], 0
    for rel in sorted(manifest["files"]):
        blocked = _blocked(results, rel)
        if blocked:
            clashes.append(blocked)
        elif (results / rel).exists():
            if file_sha256(results / rel) == manifest["files"][rel]["sha256"]:
                same += 1
            else:
                clashes.append(f"{results / rel} exists with other content")
        else:
            todo.append(rel)
    return clashes, todo, same


class _Staging:
    """A temporary folder beside the study folder that an import writes into; the files move
    into place only when every one is written and verified, and ``undo`` leaves the study
    folder (and the folders above it this import created) as they were."""

    PREFIX = ".noisykd-import-"

    def __init__(self, results: Path):
        self.results = Path(os.path.abspath(results))
        self.made: list[Path] = []  # folders this import created, outermost first
        self.moved: list[str] = []
        self.folder: Path | None = None
        self.renamed_whole = False

    def create(self) -> Path:
        parent, missing = self.results.parent, []
        while not parent.exists():
            missing.append(parent)
            parent = parent.parent
        for d in reversed(missing):
            d.mkdir()
            self.made.append(d)
        for _ in range(100):
            folder = self.results.parent / f"{self.PREFIX}{self.results.name}-{os.urandom(4).hex()}"
            try:
                folder.mkdir()
            except FileExistsError:
                continue
            self.folder = folder
            return folder
        raise FileExistsError(f"no free staging folder name in {self.results.parent}")

    def move_into_place(self, todo: list[str]) -> None:
        """Move the staged files into the study folder: one rename when it does not exist,
        else file by file (undone on failure)."""
        if self.folder is None or not todo:
            return
        if not self.results.exists() and not self.results.is_symlink():
            _rename(self.folder, self.results)
            self.renamed_whole, self.folder = True, None
            return
        for rel in todo:
            dest = self.results / rel
            missing = [p for p in [*reversed(dest.parents)] if
                       p.is_relative_to(self.results) and p != self.results and not p.exists()]
            for d in missing:
                d.mkdir()
                self.made.append(d)
            if dest.exists() or dest.is_symlink():
                raise UserError(f"{dest} appeared during the import; nothing was written")
            _rename(self.folder / rel, dest)
            self.moved.append(rel)

    def undo(self) -> None:
        """Best effort, also after Ctrl-C: moved files back, created folders removed."""
        if self.renamed_whole:
            shutil.rmtree(self.results, ignore_errors=True)
        for rel in reversed(self.moved):
            try:
                _rename(self.results / rel, self.folder / rel)
            except OSError:
                pass
        self.discard()
        for d in reversed(self.made):
            try:
                d.rmdir()
            except OSError:
                pass

    def discard(self) -> None:
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)
            self.folder = None


_rename = os.rename  # (tests break it)


def _write_error(exc: WriteFailed, results: Path, need: int) -> UserError:
    where, err = exc.args
    if err.errno == errno.ENOSPC:
        return UserError(f"no space left on device writing {where} (the import needs "
                         f"{size_text(need)} beside {results}); nothing was written")
    return UserError(f"cannot write {where}: {err.strerror or err}; nothing was written")


def import_bundle(path: Path, results: Path, limits: Limits = Limits()) -> dict:
    """Verify ``path`` while writing its new files into a temporary folder beside
    ``results`` (the study folder), then move them into place. Nothing is written when the
    bundle fails verification, a file there has other content, a path cannot be written,
    the disk fills up or the import is interrupted. Returns counts."""
    results = Path(results)
    staging = _Staging(results)
    survey = {"clashes": [], "todo": [], "same": 0, "need": 0}

    def plan(manifest: dict):
        try:
            clashes, todo, same = _survey(results, manifest)
            survey.update(clashes=clashes, todo=todo, same=same,
                          need=sum(manifest["files"][rel]["size"] for rel in todo))
            if clashes or not todo:
                return None, set()
            return staging.create(), set(todo)
        except OSError as exc:
            raise WriteFailed(exc.filename or results, exc) from None

    try:
        manifest, files = scan(path, limits, plan)
        clashes = survey["clashes"]
        if clashes:
            more = f" (and {len(clashes) - 1} more)" if len(clashes) > 1 else ""
            raise UserError(f"refusing to overwrite: {clashes[0]}{more}; nothing was written")
        staging.move_into_place(survey["todo"])
    except WriteFailed as exc:
        staging.undo()
        raise _write_error(exc, results, survey["need"]) from None
    except OSError as exc:
        staging.undo()
        raise _write_error(WriteFailed(exc.filename or results, exc), results, 0) from None
    except BaseException:
        staging.undo()
        raise
    staging.discard()
    restamp(results)
    return {"written": len(survey["todo"]), "present": survey["same"],
            "study": manifest.get("study"), **counts(files)}


def restamp(results: Path) -> int:
    """Make every stage of a study folder newer than the stages it is made from (data <
    labels < teachers < runs), moving modification times forward only, so that Snakemake
    (which has no metadata for imported files and compares times) retrains nothing that is
    consistent. A teacher or run is moved only when it is consistent with what is there: its
    labels file has the sha256 its spec names and, for a run, every teacher it distilled from
    (by spec hash) is present. Returns the number of files re-stamped."""
    results = Path(results)
    labels = StudyLayout.of(results).labels_files()
    labels_sha = {str(p.relative_to(results)): file_sha256(p) for p in labels}
    teacher_hashes = set()
    stages: list[list[Path]] = [sorted(results.glob("data/*.json")), labels, [], []]
    for stage, pattern in ((2, layout.TEACHER_GLOB), (3, layout.RUN_GLOB)):
        for d in sorted(results.glob(pattern)):
            m = read_metrics_or_none(d / layout.METRICS)
            if m is None:  # missing or off the schema: not re-stamped
                continue
            try:
                ok = labels_sha.get(labels_file_of(m)) == m.labels.get("file_sha256")
            except (ValueError, KeyError, TypeError, AttributeError):
                continue
            ok = ok and all(t.get("config_hash") in teacher_hashes for t in m.teachers)
            if stage == 2 and ok:
                teacher_hashes.add(m.config_hash)
            if ok:
                stages[stage] += [p for p in sorted(d.iterdir()) if p.is_file()]
    moved, floor = 0, None
    for files in stages:
        if floor is not None:
            for p in files:
                if p.stat().st_mtime <= floor:
                    os.utime(p, (floor + 1, floor + 1))
                    moved += 1
        earlier = [p.stat().st_mtime for p in files]
        if earlier:
            floor = max(earlier + ([floor] if floor is not None else []))
    return moved


@dataclass
class Opened:
    """A study to read: a folder as it is, or a bundle extracted to a temporary folder."""

    folder: Path
    source: str
    _tmp: object = None

    def close(self) -> None:
        if self._tmp is not None:
            self._tmp.cleanup()


def open_study(path: Path) -> Opened:
    """A results folder or a bundle file, as a folder to read (``close()`` when done)."""
    import tempfile

    path = Path(path)
    if path.is_dir():
        if not (path / "runs").is_dir():
            raise UserError(f"{path} is not a study folder (no runs/ in it) nor a bundle: "
                            "name one, e.g. results/default or a .tar.gz bundle")
        return Opened(path, str(path))
    tmp = tempfile.TemporaryDirectory(prefix="noisykd-bundle-")
    try:
        import_bundle(path, Path(tmp.name) / "study")
    except BaseException:
        tmp.cleanup()
        raise
    return Opened(Path(tmp.name) / "study", str(path), tmp)


