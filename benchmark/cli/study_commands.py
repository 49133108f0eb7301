"""The study commands: report, compare, fingerprint, bundle, job-failed, forget. Each ``add_*``
adds a subparser whose command imports what it needs when it runs."""

from __future__ import annotations

import sys
from pathlib import Path

from benchmark.core.errors import UserError


def add_report(sub) -> None:
    p = sub.add_parser("report", help="rebuild every table and figure from results/ "
                                       "(trains nothing)")
    p.add_argument("--results", type=Path, default=Path("results/default"),
                   help="a study's folder (results/<study>; default: the embedded grid's)")
    p.add_argument("--strict", action="store_true",
                   help="fail, writing nothing, when runs are missing, extra (not in the "
                        "plan), duplicated or mixed (specs or code revisions)")
    p.add_argument("--no-figures", action="store_true",
                   help="tables only (skips matplotlib: a quick rerun)")
    p.set_defaults(func=_run_report)


def _run_report(args) -> None:
    from benchmark.analysis.report import write_report

    if not args.results.is_dir():
        raise UserError(f"results folder {args.results} does not exist")
    if not (args.results / "runs").is_dir():
        studies = sorted(p.name for p in args.results.iterdir()
                         if (p / "runs").is_dir() or (p / "expected_runs.json").is_file())
        if studies:
            raise UserError(f"{args.results} holds studies ({', '.join(studies)}): name one, "
                            f"e.g. --results {args.results / studies[0]}")
    written = write_report(args.results, strict=args.strict, figures=not args.no_figures)
    print(f"wrote {len(written)} files under {args.results}/tables and {args.results}/figures")


def add_compare(sub) -> None:
    p = sub.add_parser("compare", help="did RESULTS reproduce REFERENCE? (each a study folder "
                                       "or a bundle): per-cell equivalence, verdicts, ranks")
    p.add_argument("reference", type=Path, help="results/<study> or a .tar.gz bundle")
    p.add_argument("results", type=Path, help="results/<study> or a .tar.gz bundle")
    p.add_argument("--margin", type=float, default=1.0,
                   help="equivalence margin in percentage points (default 1.0)")
    p.add_argument("--out", type=Path, help="also write compare.md and tidy CSVs here")
    p.add_argument("--fail-on", choices=["differs", "inconclusive", "moved"],
                   help="exit 1 when: differs: any cell is labelled better or worse (beyond "
                        "the margin, above or below the reference), or a matched run is not "
                        "comparable; inconclusive: as differs, and also when any cell is "
                        "inconclusive; moved: as differs, and also when any matched run's "
                        "numbers are not bit-identical (a rerun of the same code on the same "
                        "arithmetic)")
    p.add_argument("--platform", type=Path, metavar="FINGERPRINT",
                   help="the arithmetic fingerprint of the machine that made REFERENCE (`noisykd "
                        "fingerprint --out FILE`): on a machine whose fingerprint differs, "
                        "bit-identity is not expected and --fail-on moved acts as differs")
    p.set_defaults(func=_run_compare)


def add_fingerprint(sub) -> None:
    p = sub.add_parser("fingerprint", help="this machine's arithmetic fingerprint (torch build, "
                                           "CPU kernels, processor) as JSON: machines that "
                                           "share it rerun a spec bit for bit")
    p.add_argument("--out", type=Path, help="also write it to this file")
    p.set_defaults(func=_run_fingerprint)


def _run_fingerprint(args) -> int:
    import json

    from benchmark.core.atomic import atomic_write_text
    from benchmark.exchange.fingerprint import fingerprint

    text = json.dumps(fingerprint(), indent=2) + "\n"
    print(text, end="")
    if args.out is not None:
        atomic_write_text(args.out, text)
    return 0


def _run_compare(args) -> int:
    from benchmark.exchange.compare import compare, markdown, write_outputs
    from benchmark.spec.vocabulary import INCONCLUSIVE

    if args.out is not None and args.out.exists() and not args.out.is_dir():
        raise UserError(f"--out {args.out} exists and is not a folder")
    fail_on, note = args.fail_on, None
    if args.platform is not None:
        from benchmark.exchange.fingerprint import differences, fingerprint, read

        ref_platform = read(args.platform)  # a bad file fails before the comparison
        differ = differences(ref_platform, fingerprint())
        if differ and fail_on == "moved":
            fail_on = "differs"
            note = (f"noisykd compare: this machine's arithmetic differs from {args.platform} "
                    f"({'; '.join(differ)}): bit-identity is not expected here, so --fail-on "
                    "moved acts as --fail-on differs")
    result = compare(args.reference, args.results, args.margin)
    text = markdown(result, str(args.reference), str(args.results))
    print(text)
    if args.out is not None:
        write_outputs(result, args.out, text)
    if note:
        print(note, file=sys.stderr)
    differs = result.n_differs + len(result.not_comparable)  # better or worse
    failing = {"differs": differs,
               "inconclusive": differs + result.count(INCONCLUSIVE),
               "moved": differs + result.n_moved}
    if fail_on and failing[fail_on]:
        what = "cells and runs" if fail_on == "moved" else "cells"
        print(f"noisykd compare: {failing[fail_on]} {what} fail --fail-on {fail_on}",
              file=sys.stderr)
        return 1
    return 0


def add_bundle(sub) -> None:
    p = sub.add_parser("bundle", help="results bundles: export a study to one file, verify "
                                      "one, import one into a study folder")
    verbs = p.add_subparsers(dest="verb", required=True, metavar="VERB")
    e = verbs.add_parser("export", help="write a study's runs, labels, config and plan (and "
                                        "with --with-teachers the teacher models) to a .tar.gz")
    e.add_argument("--results", type=Path, required=True, help="the study folder")
    e.add_argument("--out", type=Path, required=True, help="FILE.tar.gz")
    e.add_argument("--with-teachers", action="store_true",
                   help="add the teachers' model files (model_last.pt, model_best.pt)")
    e.add_argument("--alpha", choices=("full", "summary"), default="full",
                   help="ALM runs' weights: full (each alpha.npz, every instance and refresh) "
                        "or summary (alpha_summary.json: what the tables and figures need, "
                        "a fraction of the size)")
    e.add_argument("--teachers-only", action="store_true",
                   help="teachers (with their models), labels and config only: a teacher zoo")
    e.add_argument("--config", type=Path, help="the study's config when it has no config.yaml")
    for key in ("dataset", "noise", "setup", "method"):
        e.add_argument(f"--{key}", action="append", default=[],
                       help=f"only these {key}s (repeatable)")
    v = verbs.add_parser("verify", help="check every checksum and spec hash of a bundle")
    v.add_argument("bundle", type=Path)
    i = verbs.add_parser("import", help="verify a bundle, then copy its files into a study "
                                        "folder (never overwriting other content)")
    i.add_argument("bundle", type=Path)
    i.add_argument("--results", type=Path, required=True, help="the study folder to fill")
    for q in (v, i):  # benchmark/exchange/bundle/common.py MAX_MEMBER, MAX_TOTAL
        q.add_argument("--max-member-size", metavar="SIZE", default="2G",
                       help="refuse a bundle holding a file larger than this (default 2G; "
                            "K, M, G, T: binary units)")
        q.add_argument("--max-total-size", metavar="SIZE", default="16G",
                       help="refuse a bundle whose files add up to more (default 16G)")
    p.set_defaults(func=_run_bundle)


def _bundle_limits(args):
    from benchmark.exchange.bundle import Limits, parse_size

    return Limits(parse_size(args.max_member_size, "--max-member-size"),
                  parse_size(args.max_total_size, "--max-total-size"))


def _run_bundle(args) -> int:
    from benchmark.exchange import bundle

    try:
        if args.verb == "export":
            filters = bundle.Filters(tuple(args.dataset), tuple(args.noise), tuple(args.setup),
                                     tuple(args.method))
            m = bundle.export(args.results, args.out, filters,
                              with_teachers=args.with_teachers or args.teachers_only,
                              teachers_only=args.teachers_only, config=args.config,
                              alpha=args.alpha)
            kinds = [r["kind"] for r in m["runs"]]
            from benchmark.core.hashing import file_sha256

            print(f"wrote {args.out}: {len(m['files'])} files, {kinds.count('student')} runs, "
                  f"{kinds.count('teacher')} teachers of study {m['study']}; sha256 "
                  f"{file_sha256(args.out)}")
        elif args.verb == "verify":
            c = bundle.verify(args.bundle, _bundle_limits(args))
            print(f"{args.bundle}: verified ({c['files']} files, {c['runs']} runs, "
                  f"{c['teachers']} teachers of study {c['study']})")
            # the manifest's invocation log (benchmark/exchange/studylog.py)
            for e in c["trained_by"]:
                git = e.get("git") or {}
                print(f"  trained {e.get('trained_now')} runs in {e.get('wall_time_s', 0) / 60:.1f}"
                      f" min on {e.get('started', '?')}: {e.get('command')} (git "
                      f"{(git.get('commit') or '?')[:10]}{' dirty' if git.get('dirty') else ''}"
                      f", {(e.get('host') or {}).get('cpus')} CPUs)")
        else:
            c = bundle.import_bundle(args.bundle, args.results, _bundle_limits(args))
            print(f"imported {args.bundle} into {args.results}: {c['written']} files written, "
                  f"{c['present']} already there ({c['runs']} runs, {c['teachers']} teachers "
                  f"of study {c['study']}); tables: noisykd report --results {args.results}")
    except bundle.BundleInvalid as exc:
        problems = bundle.summary_lines(exc.args[0])
        print(f"noisykd bundle {args.verb}: {args.bundle} failed verification "
              f"({len(exc.args[0])} problems)"
              + ("; nothing was written:" if args.verb == "import" else ":"), file=sys.stderr)
        for line in problems:
            print(f"  {line}", file=sys.stderr)
        return 1
    return 0


def add_job_failed(sub) -> None:
    p = sub.add_parser("job-failed", help="print a failed workflow job's cause from its log "
                                          "and exit 1 (what the workflow's rules call)")
    p.add_argument("rule")
    p.add_argument("log", type=Path)
    p.set_defaults(func=_run_job_failed)


def _run_job_failed(args) -> int:
    from benchmark.workflow.jobconsole import report_failure

    report_failure(args.rule, args.log)
    return 1


def add_forget(sub) -> None:
    p = sub.add_parser("forget", help="remove runs (their folder and checkpoints) so that the "
                                      "next snakemake trains them again from scratch")
    p.add_argument("run_dirs", nargs="+", type=Path, metavar="RUN_DIR",
                   help="e.g. results/default/runs/digits/symmetric_0.40/none/ce/seed3")
    p.set_defaults(func=_run_forget)


def _run_forget(args) -> None:
    from benchmark.exchange.forget import forget

    for line in forget(args.run_dirs):
        print(line)
    print("the next snakemake (the same command as before) trains them again")
