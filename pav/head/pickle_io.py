"""Safe reading and writing of FLAME-style head model pickles.

The official FLAME 2020 `generic_model.pkl` was written by Python 2 and holds chumpy arrays and a
scipy sparse joint regressor. `load_head_pickle` reads it without chumpy or scipy and without
running arbitrary code: a restricted unpickler admits numpy arrays, turns chumpy and scipy sparse
objects into inert stand-ins, converts those to plain numpy arrays, and refuses every other class.
"""

from __future__ import annotations

import os
import pickle
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["HeadModelError", "load_head_pickle", "save_head_pickle"]

_PICKLE_PROTOCOL = 4


class HeadModelError(ValueError):
    """A head model file (or a file that extends one) is missing, unreadable or inconsistent."""


def _numpy_internals() -> dict[str, Any]:
    """The numpy functions array pickles reference, found without importing the deprecated numpy.core."""
    try:
        from numpy._core import multiarray, numeric
    except ImportError:  # numpy < 2 only has numpy.core
        from numpy.core import multiarray, numeric  # type: ignore[no-redef]
    return {
        "_reconstruct": multiarray._reconstruct,
        "scalar": multiarray.scalar,
        "_frombuffer": numeric._frombuffer,
    }


def _allowed_numpy_globals() -> dict[tuple[str, str], Any]:
    internals = _numpy_internals()
    allowed: dict[tuple[str, str], Any] = {("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): np.dtype}
    # Pickles written under numpy 1 name numpy.core.*, those under numpy 2 name numpy._core.*.
    for package in ("numpy.core", "numpy._core"):
        allowed[(f"{package}.multiarray", "_reconstruct")] = internals["_reconstruct"]
        allowed[(f"{package}.multiarray", "scalar")] = internals["scalar"]
        allowed[(f"{package}.numeric", "_frombuffer")] = internals["_frombuffer"]
    return allowed


def _latin1_encode(text: str, encoding: str = "utf-8", errors: str = "strict") -> bytes:
    """Stand-in for `_codecs.encode`, which protocol-2 pickles use to store bytes; latin-1 only."""
    if not isinstance(text, str) or encoding.lower().replace("-", "") != "latin1":
        raise pickle.UnpicklingError(f"refusing _codecs.encode with encoding {encoding!r}")
    return text.encode("latin-1", errors)


class _StandIn:
    """An inert object that only records the state a pickle gives it."""

    pickled_name = "?"
    state: Any = None  # stays None when the pickle has no state for the object

    def __new__(cls, *args: Any, **kwargs: Any) -> _StandIn:
        return super().__new__(cls)

    def __init__(self, *args: Any, **kwargs: Any) -> None:  # old protocol-0/1 pickles call the class
        pass

    def __setstate__(self, state: Any) -> None:
        self.state = state


class _ChumpyStandIn(_StandIn):
    """A chumpy object; chumpy pickles its __dict__ (without _parents/_cache), the values are in 'x'."""


class _SparseStandIn(_StandIn):
    """A scipy sparse matrix; its state dict holds data, indices, indptr and the shape."""


def _safe_reconstructor(cls: type, base: type, state: Any) -> Any:
    """Stand-in for `copyreg._reconstructor` (protocol 0/1 pickles); builds stand-ins only."""
    if not (isinstance(cls, type) and issubclass(cls, _StandIn) and base is object):
        raise pickle.UnpicklingError(f"refusing copyreg._reconstructor for {cls!r}")
    return cls.__new__(cls)


def _is_sparse_class(module: str, name: str) -> bool:
    in_scipy_sparse = module == "scipy.sparse" or module.startswith("scipy.sparse.")
    return in_scipy_sparse and (name.endswith("_matrix") or name.endswith("_array"))


class _RestrictedUnpickler(pickle.Unpickler):
    """Admits numpy arrays and a few builtins, stands in for chumpy and scipy sparse, refuses the rest."""

    def __init__(self, file: Any, source: str) -> None:
        super().__init__(file, encoding="latin1")  # Python 2 str -> latin-1 keeps array bytes intact
        self.source = source
        self.allowed: dict[tuple[str, str], Any] = {
            **_allowed_numpy_globals(),
            ("builtins", "set"): set,
            ("builtins", "frozenset"): frozenset,
            ("builtins", "object"): object,
            ("_codecs", "encode"): _latin1_encode,
            ("copyreg", "_reconstructor"): _safe_reconstructor,
        }
        # Overriding find_class skips pickle's Python 2 name mapping, so the Python 2 names are listed too.
        for (module, name), value in list(self.allowed.items()):
            if module in ("builtins", "copyreg"):
                self.allowed[({"builtins": "__builtin__", "copyreg": "copy_reg"}[module], name)] = value
        self.stand_ins: dict[tuple[str, str], type] = {}

    def find_class(self, module: str, name: str) -> Any:
        key = (module, name)
        if key in self.allowed:
            return self.allowed[key]
        if module == "chumpy" or module.startswith("chumpy."):
            return self._stand_in(key, _ChumpyStandIn)
        if _is_sparse_class(module, name):
            return self._stand_in(key, _SparseStandIn)
        raise HeadModelError(
            f"{self.source}: refusing to load class '{module}.{name}' "
            "(a head model pickle may only hold numpy arrays, chumpy arrays and scipy sparse matrices)"
        )

    def _stand_in(self, key: tuple[str, str], base: type) -> type:
        if key not in self.stand_ins:
            # One subclass per pickled class so conversion errors can name what was pickled.
            self.stand_ins[key] = type(key[1], (base,), {"pickled_name": ".".join(key)})
        return self.stand_ins[key]


def _sparse_coords(state: dict[str, Any], kind: str) -> tuple[np.ndarray, np.ndarray]:
    """Row and column of every stored value of a csc/csr/coo state (KeyError if a field is missing)."""
    if kind in ("csc", "csr"):
        indptr = np.asarray(state["indptr"], dtype=np.int64)
        major = np.repeat(np.arange(len(indptr) - 1), np.diff(indptr))  # column (csc) / row (csr)
        minor = np.asarray(state["indices"], dtype=np.int64)
        return (minor, major) if kind == "csc" else (major, minor)
    coords = state["coords"] if "coords" in state else (state["row"], state["col"])  # coo, new / old scipy
    return np.asarray(coords[0], dtype=np.int64), np.asarray(coords[1], dtype=np.int64)


def _sparse_to_dense(obj: _SparseStandIn, where: str) -> np.ndarray:
    """Dense float64 [M, N] array from a pickled scipy csc/csr/coo matrix state, without scipy."""
    kind = obj.pickled_name.rsplit(".", 1)[-1][:3]
    if kind not in ("csc", "csr", "coo"):
        raise HeadModelError(f"{where} is a {obj.pickled_name}; only csc, csr and coo matrices are supported")
    state = obj.state if isinstance(obj.state, dict) else {}
    try:
        rows, cols = (int(n) for n in state["_shape" if "_shape" in state else "shape"])
        r, c = _sparse_coords(state, kind)
        dense = np.zeros((rows, cols), dtype=np.float64)
        np.add.at(dense, (r, c), np.asarray(state["data"], dtype=np.float64))  # duplicates sum, as in scipy
    except KeyError as err:
        raise HeadModelError(f"{where} is a {obj.pickled_name} without {err} in its state") from None
    except (TypeError, ValueError, IndexError) as err:
        raise HeadModelError(f"{where} is a {obj.pickled_name} with inconsistent data ({err})") from None
    return dense


def _to_plain(value: Any, where: str) -> Any:
    """Replace stand-ins (recursively through containers) by numpy arrays."""
    if isinstance(value, _ChumpyStandIn):
        if not isinstance(value.state, dict) or "x" not in value.state:
            raise HeadModelError(f"{where} is a {value.pickled_name} without an 'x' array in its state")
        return np.asarray(_to_plain(value.state["x"], where))
    if isinstance(value, _SparseStandIn):
        return _sparse_to_dense(value, where)
    if isinstance(value, dict):
        return {k: _to_plain(v, f"{where}[{k!r}]") for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_to_plain(v, f"{where}[{i}]") for i, v in enumerate(value))
    return value


def load_head_pickle(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a head model pickle into a dict of plain Python / numpy values.

    Raises HeadModelError, naming the file, for a missing file, a file that is not a pickle
    (or is truncated), a pickle that is not a dict, or a pickle that references any class
    other than numpy arrays, chumpy arrays and scipy sparse matrices.
    """
    source = str(path)
    try:
        with open(path, "rb") as handle:
            raw = _RestrictedUnpickler(handle, source).load()
    except HeadModelError:
        raise
    except FileNotFoundError:
        raise HeadModelError(f"{source}: no such file") from None
    except Exception as err:  # any unpickling failure means the file is not a usable pickle
        raise HeadModelError(
            f"{source}: not a readable head model pickle ({type(err).__name__}: {err})"
        ) from err
    if not isinstance(raw, dict):
        raise HeadModelError(
            f"{source}: expected a dict of arrays at the top level, got {type(raw).__name__}"
        )
    return {str(key): _to_plain(value, f"{source}: field '{key}'") for key, value in raw.items()}


def _check_plain(value: Any, where: str) -> None:
    """Refuse values that the restricted loader could not read back."""
    if isinstance(value, np.ndarray):
        if value.dtype.kind not in "biufcSU":
            raise TypeError(
                f"{where}: numpy array of dtype {value.dtype} cannot be saved (numbers or strings only)"
            )
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            _check_plain(item, f"{where}[{i}]")
    elif isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(f"{where}: dict keys must be str, got {type(key).__name__}")
            _check_plain(item, f"{where}[{key!r}]")
    elif not isinstance(value, (bool, int, float, str, bytes, np.generic)) and value is not None:
        raise TypeError(
            f"{where}: cannot save a {type(value).__name__} (numpy arrays, numbers, str, lists only)"
        )


def save_head_pickle(path: str | os.PathLike[str], data: Mapping[str, Any]) -> None:
    """Write `data` (numpy arrays, numbers, strings, lists, dicts) as a pickle `load_head_pickle` reads.

    The file is written to a temporary name and renamed, so a concurrent reader never sees half a file.
    """
    target = Path(path)
    for key, value in data.items():
        if not isinstance(key, str):
            raise TypeError(f"{target}: keys must be str, got {type(key).__name__}")
        _check_plain(value, f"{target}: field '{key}'")
    target.parent.mkdir(parents=True, exist_ok=True)
    # A unique name opened with "xb" (not mkstemp) so the file gets the usual umask permissions.
    tmp = target.with_name(f".{target.name}.{os.getpid()}.{uuid.uuid4().hex}.tmp")
    try:
        with open(tmp, "xb") as handle:
            pickle.dump(dict(data), handle, protocol=_PICKLE_PROTOCOL)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
