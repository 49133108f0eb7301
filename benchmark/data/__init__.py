"""Dataset registry: ``load_dataset(name)`` gives one ``DatasetRecord`` for every source.

Importing this package registers every dataset but loads nothing and imports no torch.
"""

from benchmark.data import cifar, fashion_mnist, imagefolder, mnist, tabular  # noqa: F401  (registers datasets)
from benchmark.data.record import DatasetRecord
from benchmark.data.registry import (
    DatasetEntry,
    dataset_names,
    default_data_root,
    get_entry,
    load_dataset,
)

__all__ = [
    "DatasetEntry",
    "DatasetRecord",
    "dataset_names",
    "default_data_root",
    "get_entry",
    "load_dataset",
]
