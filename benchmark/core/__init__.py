"""The lowest layer: errors, seeds, atomic files, hashes, provenance, locks and quoting. Torch-
free; imports nothing else of the package.
"""
