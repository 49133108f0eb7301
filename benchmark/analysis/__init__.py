"""Torch-free analysis: collect, completeness, scores, statistics, verdicts, ranks, moderators,
tables, figures and the report. Never imports planning, training or methods (but the torch-
free method catalog).
"""
