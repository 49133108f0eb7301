"""A table of the noise that labels files actually realised (requested vs implied vs realised).

This is what the default workflow reports until the training stages exist, and stays
useful after: a reader sees at a glance that ``symmetric-incl_0.40`` realises about 0.36.
"""

from __future__ import annotations

from pathlib import Path

from tabulate import tabulate

from benchmark.data.labels import noise_label, read_labels

HEADERS = ["dataset", "noise", "seed", "requested", "expected", "realised",
           "train", "val", "test"]


def labels_summary_rows(paths: list[Path]) -> list[list]:
    rows = []
    for path in paths:
        m = read_labels(path).meta
        req = m["rate_requested"]
        rows.append([m["dataset"], noise_label(m), m["seed"],
                     "-" if req is None else f"{req:.3f}",
                     f"{m['rate_expected']:.4f}", f"{m['rate_realised']:.4f}",
                     m["n_train"], m["n_val"], m["n_test"]])
    rows.sort(key=lambda r: (r[0], r[1], r[2]))
    return rows


def labels_summary_markdown(paths: list[Path]) -> str:
    table = tabulate(labels_summary_rows(paths), headers=HEADERS, tablefmt="github",
                     disable_numparse=True)
    legend = ("\n\nrequested: the configured rate; expected: the mean flip probability the "
              "noise model implies on this training split (differs from requested for "
              "symmetric-incl, partial class maps and instance noise); realised: the share "
              "of training labels that differ from the clean ones. Validation and test "
              "labels are clean. Instance noise names what its projection scored: raw "
              "inputs (pixel values 0..255, as Xia et al.) or standardised ones "
              "(instance-std, and instance files written before the raw form).\n")
    return "# Label noise realised per labels file\n\n" + table + legend
