"""Results bundles: one ``.tar.gz`` file that carries a study (``noisykd bundle ...``).

A bundle holds, relative to the study folder (``results/<study>/``): ``config.yaml`` and
``expected_runs.json`` (the workflow writes both), ``data/<dataset>.json`` (the prepare-data
records), the labels files, every student run's ``metrics.json``, ``log.csv`` and, for ALM
runs, ``alpha.npz`` (``--alpha summary``: ``alpha_summary.json`` instead, the per-run
summary the tables and figures need, benchmark/analysis/alpha_summary.py), every teacher's
``metrics.json`` and ``log.csv`` (the tables show teacher accuracy); ``--with-teachers``
adds the teachers' model files (``model_last.pt``, ``model_best.pt``: all of a teacher's
declared outputs, so that Snakemake plans no teacher training after an import).
``manifest.json`` comes first and lists every file with its sha256 and size, every run with
its spec hash, code revision and environment, and the study's invocation log (the commands
that ran it, with code revision, versions and wall time: benchmark/exchange/studylog.py).
Checkpoints, logs, tables and figures stay out: tables and figures are rebuilt from the
runs.

``verify`` checks the member types and names, that every file is of a kind the format
defines (the layout above; teacher models only when the manifest says ``with_teachers``;
never a checkpoint or any other path), every checksum and size, that nothing is listed
twice or unlisted, that every metrics.json and alpha_summary.json has the declared keys and
types (benchmark/spec/run_metrics.py: accuracies finite and in [0, 1]), that every metrics.json's
``config_hash`` is the hash of its spec, and that each run's labels file in the bundle is
the one its spec names (sha256). It reads the archive once, each member in 1 MiB pieces
(never a whole member in memory), within limits: ``Limits`` (per file and in all, raised
with ``--max-member-size`` / ``--max-total-size``), pax and GNU long-name headers checked
from their 512-byte header block before tarfile reads them (``_guarded_tarinfo``).
``import`` verifies while it writes the new files into a temporary folder beside the study
folder, refuses (naming the file) to overwrite a file with other content, and moves the
files into place only when all are written and verified: a failure (a bad member, a full
disk, a name the file system refuses, Ctrl-C) leaves the study folder as it was. It copies
bytes only (never unpickles; model files are later loaded with ``weights_only=True``) and
sets modification times in the workflow's order (data < labels < teachers < runs, forward
only, for everything consistent with what the folder holds), so that Snakemake, which has
no metadata for imported files, sees every output newer than its inputs and plans no
training.
"""


from benchmark.exchange.bundle.common import (  # noqa: F401 (the package's API)
    ALPHA_MODES,
    FORMAT,
    MANIFEST,
    MAX_EXTRA_MEMBERS,
    MAX_MEMBER,
    MAX_TOTAL,
    NAME_MAX,
    RUN_FILES,
    TEACHER_FILES,
    TEACHER_MODELS,
    VERSION,
    BundleInvalid,
    Filters,
    Limits,
    parse_size,
    summary_lines,
)
from benchmark.exchange.bundle.exporting import export, study_files  # noqa: F401
from benchmark.exchange.bundle.importing import (  # noqa: F401
    Opened,
    import_bundle,
    open_study,
    restamp,
)
from benchmark.exchange.bundle.verifying import read_bundle, verify  # noqa: F401
