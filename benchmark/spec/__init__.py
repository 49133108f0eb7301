"""Torch-free records: the training config, the protocols, the metrics.json schema,
architecture names and the verdict vocabulary.
"""
