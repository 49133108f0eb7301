# Report: tables and figures of the study (results/<study>/). `report` is what `all` builds
# once every run of the grid exists; `tables` rebuilds them from whatever runs exist,
# training nothing.

from benchmark.analysis.completeness import plan_payload
from benchmark.core.shellquote import quote_always


def _in_report(path):
    """Tables and figures go into `snakemake --report results/report.html` with captions."""
    if path.endswith((".md", ".csv")) and "/tables/" in path and not path.endswith(".tex"):
        kind = "Tables (Markdown)" if path.endswith(".md") else "Tables (CSV)"
        return report(path, caption="../report/table.rst", category=kind)
    if path.endswith(".png"):
        return report(path, caption="../report/figure.rst", category="Figures")
    return path


rule expected_runs:
    """The plan the report holds the runs to: the run folders this config expects (the
    report lists what is missing and leaves out what is not planned) and the comparisons it
    declares (each ALM method against each configured baseline), fixed before any test
    number exists; and the study's config as validated (schema defaults filled), which a
    results bundle carries (`noisykd bundle export`)."""
    output:
        str(PLAN.layout.plan),
        str(PLAN.layout.config),
    params:
        plan=plan_payload([r.out for r in PLAN.student_runs],
                          {r.method for r in PLAN.student_runs}, PLAN.root,
                          config.get("analysis")),
        config=config,
    localrule: True
    run:
        import json

        import yaml

        from benchmark.core.atomic import atomic_write_text

        atomic_write_text(output[0], json.dumps(params.plan, indent=1) + "\n")
        atomic_write_text(output[1], yaml.safe_dump(dict(params.config), sort_keys=False))


rule report:
    input:
        str(PLAN.layout.plan),
        PLAN.labels_files,
        [o for job in PLAN.teacher_jobs + PLAN.student_jobs for o in job.outputs],
    output:
        [_in_report(path) for path in grid.report_outputs(PLAN)],
    log:
        f"{PLAN.root}/logs/report.log",
    localrule: True
    shell:
        f"noisykd report --results {quote_always(PLAN.root)} > {{log:q}} 2>&1" + SHOW_LOG


rule tables:
    localrule: True
    shell:
        f"noisykd report --results {quote_always(PLAN.root)}"
