"""Reading a user's npz without trusting it: plain arrays only, sizes bounded before reading.

`np.load(..., allow_pickle=False)` refuses pickled arrays, but hands back a member that is not an
`.npy` (a raw pickle, any bytes) as `bytes`, and reads whatever size a forged header claims. Here
each member must be an `.npy` of a plain (non-object) dtype whose declared size fits the budget;
anything else is a one-line `InputFileError` naming the file and the member.
"""

from __future__ import annotations

import zipfile
import zlib
from pathlib import Path

import numpy as np
from numpy.lib import format as npy_format

from diffpose3d.errors import InputFileError
from diffpose3d.io.limits import MAX_ARRAY_BYTES, regular_file

_HEADER_READERS = {(1, 0): npy_format.read_array_header_1_0, (2, 0): npy_format.read_array_header_2_0}


def load_npz(path: str | Path, *, max_bytes: int = MAX_ARRAY_BYTES) -> dict[str, np.ndarray]:
    """Every array of the npz at `path` (names without `.npy`), at most `max_bytes` in all."""
    p = regular_file(path)
    try:
        with zipfile.ZipFile(p) as archive:
            arrays: dict[str, np.ndarray] = {}
            budget = max_bytes
            for info in archive.infolist():
                if info.is_dir():
                    continue
                name = info.filename[:-4] if info.filename.endswith(".npy") else None
                if name is None:
                    raise InputFileError(p, f"member {info.filename[:60]!r} is not an .npy array (not read)")
                with archive.open(info) as member:
                    arrays[name] = _read_member(p, name, member, budget)
                budget -= arrays[name].nbytes
            return arrays
    except InputFileError:
        raise
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError, NotImplementedError,
            RuntimeError, OverflowError, MemoryError, KeyError, TypeError, SyntaxError) as exc:
        problem = f"{exc.__class__.__name__}: {exc}"
        raise InputFileError(p, f"not a readable .npz of plain arrays ({problem[:200]})") from None


def _read_member(path: Path, name: str, member, budget: int) -> np.ndarray:
    try:
        version = npy_format.read_magic(member)
    except ValueError:
        raise InputFileError(path, f"member '{name}' is not an .npy array (pickled or other data is not read)") from None
    reader = _HEADER_READERS.get(version)
    if reader is None:
        raise InputFileError(path, f"member '{name}': unsupported .npy version {version}")
    shape, fortran, dtype = reader(member)
    if dtype.hasobject:
        raise InputFileError(path, f"member '{name}' holds Python objects (pickles are not read)")
    if any(int(side) < 0 for side in shape):
        raise InputFileError(path, f"member '{name}' declares a negative shape {shape}")
    count = 1
    for side in shape:
        count *= int(side)
    nbytes = count * dtype.itemsize
    if nbytes > budget:
        raise InputFileError(path, f"member '{name}' declares {nbytes / 2**20:.0f} MB "
                             f"(at most {MAX_ARRAY_BYTES >> 20} MB of arrays per file)")
    data = member.read(nbytes)
    if len(data) != nbytes:
        raise InputFileError(path, f"member '{name}' is truncated ({len(data)} of {nbytes} bytes)")
    return np.frombuffer(data, dtype=dtype).reshape(shape, order="F" if fortran else "C").copy()
