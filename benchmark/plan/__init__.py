"""Torch-free planning: config checks, grid expansion into runs and paths, the cost model.
"""
