"""The one vocabulary of every verdict the suite prints (torch-, scipy- and pandas-free).

``noisykd report`` (benchmark/analysis/verdicts.py, benchmark/analysis/moderators.py) and
``noisykd compare`` (benchmark/exchange/compare.py) label a comparison with these words only:

- ``better`` / ``worse``: a difference shown (Holm-adjusted p < 0.05 in its family), in the
  direction of the estimate; in ``compare``, the results lie beyond the margin from the
  reference, above or below it;
- ``equivalent``: equivalence shown (TOST at the declared margin, p < 0.05);
- ``inconclusive``: the test could decide, and neither was shown;
- ``not testable``: the test's smallest attainable p cannot pass its family's threshold, so
  no data of this design could give a claim (the units it would need are stated).

Never "no difference": absence is claimed only as ``equivalent``.
"""

BETTER, WORSE, EQUIVALENT, INCONCLUSIVE, NOT_TESTABLE = (
    "better", "worse", "equivalent", "inconclusive", "not testable")
LABELS = (BETTER, WORSE, EQUIVALENT, INCONCLUSIVE, NOT_TESTABLE)
MARGIN = 1.0  # points: the default equivalence margin
SCOPES = ("in_these_cells", "across_tasks")

# moderators (benchmark/analysis/moderators.py): the cell attributes a config may declare
FACTORS = ("teacher_labels", "noise_type", "noise_rate", "setup", "dataset", "reads_label")
#: factors of the rules, not of the cells: ``reads_label`` contrasts, within each cell and
#: family of the trust-rule zoo, the rules whose trust reads the given label with those whose
#: trust does not (methods/catalog.py ``trust_from_label``; benchmark/analysis/moderators.py)
RULE_FACTORS = ("reads_label",)
DEFAULT_FACTORS = ("teacher_labels", "noise_type", "noise_rate")
