"""Unpickling that can only rebuild numpy arrays.

CIFAR's python batches and the CIFAR-N ``*_human.pt`` files are pickles. A plain
``pickle.load`` (or ``torch.load(weights_only=False)``) of a file someone handed you runs
whatever code the pickle names. This unpickler resolves only the handful of globals that
numpy arrays, dtypes and Python-2 byte strings need, and refuses everything else by name.
"""

from __future__ import annotations

import io
import pickle
import zipfile
from pathlib import Path

import numpy as np

from benchmark.core.errors import UserError


def _numpy_global(module: str, name: str):
    # numpy 2 moved numpy.core to numpy._core; pickles written by either name both occur.
    import importlib

    for mod in (module.replace("numpy.core", "numpy._core"), module):
        try:
            return getattr(importlib.import_module(mod), name)
        except (ImportError, AttributeError):
            continue
    raise pickle.UnpicklingError(f"cannot resolve {module}.{name}")


_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
}


class NumpyOnlyUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        if (module, name) in _ALLOWED:
            return _numpy_global(module, name)
        if (module, name) == ("_codecs", "encode"):
            import codecs

            return codecs.encode  # rebuilds the bytes of a pickled array buffer
        if (module, name) == ("collections", "OrderedDict"):
            import collections

            return collections.OrderedDict
        raise pickle.UnpicklingError(
            f"refusing to load global {module}.{name}: only numpy arrays are allowed"
        )

    def persistent_load(self, pid):
        raise pickle.UnpicklingError(
            "refusing persistent object (a torch tensor or storage): only numpy arrays are allowed"
        )


def loads_numpy_only(data: bytes, encoding: str = "latin1"):
    return NumpyOnlyUnpickler(io.BytesIO(data), encoding=encoding).load()


def load_numpy_pickle(path: str | Path, encoding: str = "latin1"):
    """Load a plain pickle or a ``torch.save`` zip archive holding only numpy objects.

    Raises ``UserError`` naming the file when it is unreadable or asks for anything else.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
        if zipfile.is_zipfile(io.BytesIO(raw)):
            with zipfile.ZipFile(io.BytesIO(raw)) as zf:
                members = [n for n in zf.namelist() if n.endswith("/data.pkl") or n == "data.pkl"]
                if len(members) != 1:
                    raise UserError(f"{path}: a torch archive must hold one data.pkl, "
                                    f"found {members or 'none'}")
                raw = zf.read(members[0])
        return loads_numpy_only(raw, encoding=encoding)
    except UserError:
        raise
    except (pickle.UnpicklingError, EOFError, ValueError, zipfile.BadZipFile, OSError) as exc:
        raise UserError(f"{path}: not loaded: {exc}") from None


def as_int_labels(value, where: str) -> np.ndarray:
    arr = np.asarray(value)
    if arr.ndim != 1 or not np.issubdtype(arr.dtype, np.integer):
        raise UserError(f"{where}: expected a 1-d integer array, got {arr.dtype} {arr.shape}")
    return arr.astype(np.int64)
