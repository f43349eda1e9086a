"""Reading the community's pickled npz files without trusting them: object arrays are rebuilt by an
unpickler that admits only data (containers, strings, numbers, numpy arrays), never code.

Plain arrays of a user's npz are read by `io.arrays.load_npz` (no pickles at all); this is the
reader for the data sets whose arrays are pickled dicts of lists of arrays.
"""

from __future__ import annotations

import builtins
import math
import pickle
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from diffpose3d.errors import InputFileError


def _numpy_globals() -> dict[tuple[str, str], Any]:
    """The globals a pickled ndarray (or numpy scalar) names, as numpy 1 and numpy 2 spell them."""
    rebuild = np.zeros(1).__reduce__()[0]  # multiarray._reconstruct
    scalar = np.float64(0).__reduce__()[0]  # multiarray.scalar: a numpy number from dtype + bytes
    out: dict[tuple[str, str], Any] = {("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): np.dtype}
    for module in ("numpy.core.multiarray", "numpy._core.multiarray"):
        out[(module, "_reconstruct")] = rebuild
        out[(module, "scalar")] = scalar
    return out


# What the community files hold: Python's containers, strings and numbers, numpy's arrays and numbers.
# (Pickles name a builtin only to rebuild a set or a complex number; bytes(n) could ask for any size.)
_SAFE_BUILTINS = ("dict", "list", "tuple", "set", "frozenset", "str", "int", "float", "complex", "bool")
_SAFE_GLOBALS = {**{("builtins", n): getattr(builtins, n) for n in _SAFE_BUILTINS}, **_numpy_globals()}


class _Refused(pickle.UnpicklingError):
    pass


class _DataUnpickler(pickle.Unpickler):
    """An unpickler that rebuilds data only: any other global (a function that could run code) is refused."""

    def find_class(self, module: str, name: str) -> Any:
        module = "builtins" if module == "__builtin__" else module  # Python 2 pickles
        try:
            return _SAFE_GLOBALS[(module, name)]
        except KeyError:
            raise _Refused(f"{module}.{name}") from None


def _read_npy(archive: zipfile.ZipFile, name: str, path: Path, key: str) -> Any:
    """One ``.npy`` member of an npz: plain arrays as numpy reads them (without pickles), object
    arrays through `_DataUnpickler` (numpy would unpickle them with the full pickle module)."""
    with archive.open(name) as member:
        version = np.lib.format.read_magic(member)
        header = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}.get(version)
        if header is not None:  # format 3.0 only differs for utf-8 field names: numpy reads it (objects refused)
            shape, _, dtype = header(member)
            if dtype.hasobject:
                try:
                    return _DataUnpickler(member, encoding="latin1").load()
                except _Refused as exc:
                    raise InputFileError(path, f"'{key}' holds a pickled {exc}, which no data file holds (only dicts, "
                                               "lists, strings, numbers and numpy arrays are read): refused, "
                                               "nothing was run") from None
            if math.prod(shape) * dtype.itemsize > archive.getinfo(name).file_size:
                raise InputFileError(path, f"'{key}': the array is truncated (header says {shape} {dtype})")
    with archive.open(name) as member:
        return np.lib.format.read_array(member, allow_pickle=False)


def load_pickled_npz(path: str | Path, key: str, *, optional: bool = False) -> Any:
    """Return the array ``key`` of an npz (``.item()`` for a 0-d object array).

    The community files hold pickled dicts of lists of arrays. They are unpickled by
    `_DataUnpickler`, which admits only what those hold (dicts, lists, strings, numbers, numpy
    arrays): a pickle that names anything else (``os.system``, ``builtins.eval``, ...) is refused
    before it can run. Every reader of these files goes through here. With ``optional`` a missing
    ``key`` gives None instead of an error.
    """
    p = Path(path)
    if not p.is_file():
        raise InputFileError(p, "file not found" if not p.exists() else "not a file")
    try:
        with zipfile.ZipFile(p) as archive:
            members = {n[:-4] if n.endswith(".npy") else n: n for n in archive.namelist()}
            if key not in members:
                if optional:
                    return None
                found = ", ".join(sorted(members)) or "none"
                raise InputFileError(p, f"missing array '{key}' (found: {found})")
            value = _read_npy(archive, members[key], p, key)
    except InputFileError:
        raise
    except RecursionError:
        raise InputFileError(p, f"cannot unpickle '{key}' (nested too deeply)") from None
    except (OSError, ValueError, zipfile.BadZipFile, EOFError, RuntimeError) as exc:
        raise InputFileError(p, f"not a readable .npz file ({exc.__class__.__name__}: {exc})") from None
    except MemoryError:
        raise InputFileError(p, f"'{key}' is too large to load") from None
    except Exception as exc:  # unpickling errors come in many types
        raise InputFileError(p, f"cannot unpickle '{key}' ({exc.__class__.__name__}: {exc})") from None
    if isinstance(value, np.ndarray) and value.dtype == object and value.shape == ():
        return value.item()
    return value
