"""NoisyKD Bench: knowledge distillation under label noise, reproducibly.

The package is imported by Snakemake at planning time, so nothing heavy (torch, timm,
torchvision, matplotlib) is imported here or in the modules planning needs.
"""

__version__ = "0.1.0"
