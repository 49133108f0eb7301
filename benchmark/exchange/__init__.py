"""Torch-free exchange of studies: bundles, compare, the arithmetic fingerprint, the study log
and forget. Never imports planning, training or methods (but the catalog).
"""
