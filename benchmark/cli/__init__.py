"""The ``noisykd`` command: every workflow rule calls the library through it.

Subcommands import what they need when they run, so ``noisykd --help`` and the labels job
stay free of torch. A ``UserError`` is printed as one line and exits with status 2.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from benchmark import __version__
from benchmark.cli import data_commands, study_commands, train_commands
from benchmark.core.errors import UserError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="noisykd",
        description="NoisyKD Bench: knowledge distillation under label noise.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    data_commands.add_labels(sub)
    data_commands.add_labels_summary(sub)
    data_commands.add_datasets(sub)
    train_commands.add_teacher(sub)
    train_commands.add_student(sub)
    train_commands.add_train_runs(sub)
    data_commands.add_prepare_data(sub)
    study_commands.add_report(sub)
    study_commands.add_forget(sub)
    study_commands.add_compare(sub)
    study_commands.add_fingerprint(sub)
    study_commands.add_bundle(sub)
    study_commands.add_job_failed(sub)
    train_commands.add_perf(sub)
    return parser


#: commands whose --out is one file to write (the others' --out is a folder)
FILE_OUT = {"labels", "labels-summary", "prepare-data", "fingerprint", "bundle export"}


def _check_out(args) -> None:
    """Refuse an --out that cannot be written, before any work starts: a file output that
    names a folder, a folder output that names a file, or a path under a file or under a
    folder this process cannot write."""
    import os

    out = getattr(args, "out", None)
    if out is None or str(out) == "-":
        return
    out = Path(out)
    command = " ".join(filter(None, [args.command, getattr(args, "verb", None)]))
    is_file = command in FILE_OUT
    if is_file and out.is_dir():
        raise UserError(f"--out {out} is a folder; name the file to write")
    if not is_file and out.exists() and not out.is_dir():
        raise UserError(f"--out {out} exists and is not a folder")
    parent = (out if not is_file and out.is_dir() else out.parent).absolute()
    while not parent.exists():  # the nearest existing folder is where the writing starts
        parent = parent.parent
    if not parent.is_dir():
        raise UserError(f"--out {out}: {parent} is a file, not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise UserError(f"--out {out}: {parent} is not writable")


def os_error_line(exc: OSError) -> str:
    """One line for an operating-system failure: what failed, on which path."""
    import errno

    where = " -> ".join(str(f) for f in (exc.filename, exc.filename2) if f is not None)
    what = {errno.ENOSPC: "no space left on device", errno.EDQUOT: "disk quota exceeded",
            errno.EROFS: "read-only file system", errno.EACCES: "permission denied",
            errno.EPERM: "operation not permitted",
            errno.ENAMETOOLONG: "file name too long"}.get(exc.errno,
                                                          exc.strerror or str(exc))
    return f"{where}: {what}" if where else what


def main(argv: list[str] | None = None) -> int:
    import os

    args = build_parser().parse_args(argv)
    try:
        _check_out(args)
        status = args.func(args)
    except UserError as exc:
        print(f"noisykd {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # a full disk, a read-only folder: the environment, in one line
        if os.environ.get("NOISYKD_TRACEBACK"):
            raise
        print(f"noisykd {args.command}: error: {os_error_line(exc)} (NOISYKD_TRACEBACK=1 "
              "shows the traceback)", file=sys.stderr)
        return 2
    return status or 0


if __name__ == "__main__":
    sys.exit(main())
