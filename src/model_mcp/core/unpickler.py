"""Trusted-type loading of `model.joblib`.

A pickle is a program: every global it names is imported and may be called. A model package
comes from outside, so `model.joblib` is loaded by a restricted unpickler that resolves only an
allowlist of exact `(module, qualname)` pairs, `TRUSTED_GLOBALS`: scikit-learn's estimators and
the internal parts their pickles need, numpy's array reconstruction, a few scipy sparse classes,
joblib's array wrapper, and the handful of builtins pickles use. Anything else answers
`untrusted_model`, naming the global, before it is imported or called. Operators may trust more
names through configuration (`Settings.trusted_globals`), never through the package.

Why exact pairs and not packages: a package prefix lets in `numpy.load(..., allow_pickle=True)`,
`numpy.save`, `joblib.load`, `numpy.ctypeslib.load_library` and friends, each a way to read or
write files or run code. Why the check comes first: pickle resolves dotted names
(`("sklearn", "os.system")` walks `sklearn.os.system`), so the pair is compared as written,
before any `import`.

How the allowlist is built (lazily, on first use, because importing scikit-learn takes a
second): every class `sklearn.utils.all_estimators()` returns, under its defining module (minus
the text vectorizers, which open files named in their input); every class defined in a few
scikit-learn modules that hold estimator parts (losses, links, distance metrics, neighbor
trees, Gaussian-process kernels), with their Cython unpickle helpers; a hand-written list of
other parts found by dumping real models with joblib and recording every global their streams
name (`tree._tree.Tree`, the histogram-boosting predictor, the MLP optimizers, `Bunch`); numpy's
reconstruction functions under both spellings (`numpy._core` and `numpy.core`), its scalar types,
its ufuncs (a `FunctionTransformer(np.log1p)` names `numpy.log1p`) and random generators.

It plugs into joblib's own loading, so arrays, alignment and compression behave as in
`joblib.load`: `_TrustedNumpyUnpickler` subclasses joblib's `NumpyUnpickler`. joblib stores an
object array as a nested pickle stream inside the file; joblib 1.6 routes only that stream's
`find_class` through the outer unpickler (not its other opcodes), older versions call
`pickle.load` on it. Either way we read such arrays ourselves with the same restricted policy (`_RestrictedUnpickler`). Nothing in
joblib is patched: every load builds its own unpicklers, so concurrent loads are independent.

Beyond `find_class`:
- opcodes that mutate an object (BUILD, APPEND(S), SETITEM(S), ADDITEMS) are refused when their
  target is a class, a function, a module or a resolved global: `BUILD` with a slot state runs
  `setattr`, which would otherwise let a pickle rewrite `IsolationForest.predict` or a trusted
  function's `__defaults__` for every model in the process;
- pickle extension codes (EXT1/2/4) are refused: they name globals through `copyreg`'s registry
  and a process-wide cache that bypasses `find_class`;
- persistent ids and out-of-band buffers are refused (`model_load_failed`);
- an object array whose `__setstate__` list holds fewer items than its shape is refused
  (`model_load_failed`): numpy 2.4 reads past the list and the process dies (SIGSEGV);
- joblib's pre-0.10 format (`ZF` prefix) and its `NDArrayWrapper` are refused: they read
  companion files with `numpy.load`.

Protocols: joblib dumps with the highest protocol, and 2 to 5 load. Protocol 0 and 1 pickle every
plain object through `copyreg._reconstructor`, which is not trusted by default (it calls
`base.__new__(cls, state)` and `base.__init__(obj, state)` for any `base` on the stack). An
operator with such an old model can trust it (`copyreg:_reconstructor`). For protocols below 3,
Python 2 names are mapped as pickle does (`__builtin__` -> `builtins`) before the check.
`_codecs.encode`, which protocols 0 to 2 use for every `bytes` object, resolves to a stand-in
that only performs the latin-1 encoding pickle writes.

The memory budget (`load_trusted(..., max_bytes=...)`; the server passes
`MODEL_MCP_MAX_UNPACKED_BYTES`, 2 GiB by default). The archive limits cannot see inside
`model.joblib`: joblib compresses it itself, so a 4.7 MB file whose array header asks for 1 GiB
of zeros passes them and then allocates 1 GiB (1.18 GB resident, 5 s). A pickle also amplifies
without compression: each one-byte EMPTY_SET opcode makes a 216-byte set (a 2 MB stream of
them held 470 MB). So one load gets one budget, charged with:
- every byte read from the decompressed stream, through a reader that reads long lengths in
  1 MiB chunks charged as they come, so a length the stream announces is never produced first;
- every array's size before it is allocated: the shape x itemsize a joblib `NumpyArrayWrapper`
  declares (its data, read next, is not charged again; twice the size if numpy must swap its
  byte order), the shape `_reconstruct` or `ndarray(...)` is called with, and the shape and
  dtype `ndarray.__setstate__` receives (nothing more when numpy keeps the `bytes` it gets);
- a fixed cost per opcode for the Python object it makes and the slot that holds it
  (`_OPCODE_COSTS`), a cost per entry added to a dict or set, and the size of each string
  decoded or copied from the stream;
- before a trusted call that allocates by a number or a shape rather than by its arguments'
  size (ufuncs, which broadcast; `numpy.matrix` and numpy scalar types, which convert; builtin
  containers made from an array; scipy's sparse classes given a shape), an upper bound of what
  it makes.
Beside the budget, one container may hold at most `MAX_CONTAINER_ITEMS` (1,000,000) items: a list,
tuple, dict, set or frozenset the stream builds (APPEND(S), SETITEM(S), ADDITEMS, TUPLE, LIST, DICT,
FROZENSET) or a call makes of an array or a string (`list(array)`), checked before the container is
made or extended; the largest a trusted model holds is its list of sub-estimators (1,000 for a
1,000-tree forest). Going over the budget answers `model_load_failed` (see `load_trusted`). Measured on the 1 GiB bomb
above with a 64 MiB budget: refused in 4 ms, 4 MB more resident (8 MiB traced). What a load
holds stays under twice the budget, plus up to 9 MiB that joblib's zlib reader inflates ahead
(8 KiB of input at a time, up to 8 MiB of output) and the transient copies pickle makes while
decoding protocol-0 text (about 2.3 times the budget there). The charges cost 20 to 30% more
load time on real models (a 200-tree IsolationForest: 32 -> 42 ms) and come to 0.6 to 2 times
the memory the load actually peaks at.

Residual risks (not closed here):
- trusted constructors placed earlier in the stream run before an untrusted name is refused;
  they are estimator or numpy constructors. What they allocate in proportion to their input
  is within the budget's bound, but a trusted class's own `__setstate__` may copy what it
  receives (scikit-learn's `Tree` copies its node arrays), and a constructor given a count
  (`Tree(n_features, n_classes, n_outputs)` reserves `n_outputs` entries, and fills only as
  many as `n_classes` holds) can reserve memory the budget does not see. Hard memory limits
  belong to the process running the load (the isolated probe sets one);
- a trusted class runs its own `__setstate__` / `__init__` with attacker-chosen state, and the
  loaded estimator runs with attacker-chosen parameters at predict time (`n_jobs=-1` spawns
  workers; a `FunctionTransformer` calls whichever trusted callable it holds). Only trusted
  callables are reachable, but their combinations are not audited one by one;
- builtin dtype singletons returned by `numpy.dtype(...)` receive `__setstate__`, as in every
  legitimate numpy pickle; numpy keeps them unchanged in the versions tested;
- names an operator adds are trusted as given.
"""

from __future__ import annotations

import _compat_pickle
import collections
import importlib
import inspect
import math
import operator
import pickle
import sys
import threading
import types
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from model_mcp.core.errors import ModelLoadFailedError, ModelMcpError, UntrustedModelError

__all__ = ["TRUSTED_GLOBALS", "check_trusted", "load_trusted"]

# Built on first access (module `__getattr__` below): the full set of exact (module, qualname)
# pairs the loader resolves without configuration.
TRUSTED_GLOBALS: frozenset[tuple[str, str]]

_Pair = tuple[str, str]

# --- The allowlist ---------------------------------------------------------------------------

# Hand-written parts, found by dumping real models (see the module docstring).
_SKLEARN_PARTS: tuple[_Pair, ...] = (
    ("sklearn.tree._tree", "Tree"),
    ("sklearn.ensemble._hist_gradient_boosting.binning", "_BinMapper"),
    ("sklearn.ensemble._hist_gradient_boosting.predictor", "TreePredictor"),
    ("sklearn.neural_network._stochastic_optimizers", "AdamOptimizer"),
    ("sklearn.neural_network._stochastic_optimizers", "SGDOptimizer"),
    ("sklearn.utils._bunch", "Bunch"),
)

# Modules that hold only estimator parts (numeric code): every class they define is trusted,
# with their `newObj` and Cython `__pyx_unpickle_*` helpers, which only call `cls.__new__`.
_SKLEARN_PART_MODULES: tuple[str, ...] = (
    "sklearn._loss.loss",
    "sklearn._loss.link",
    "sklearn._loss._loss",
    "sklearn.linear_model._sgd_fast",
    "sklearn.metrics._dist_metrics",
    "sklearn.neighbors._kd_tree",
    "sklearn.neighbors._ball_tree",
    "sklearn.gaussian_process.kernels",
)

# Estimators left out on purpose: with `input="filename"` or `"file"` they open whatever their
# input names, and an integer input is a file descriptor.
_EXCLUDED_ESTIMATORS: frozenset[str] = frozenset(
    {"CountVectorizer", "TfidfVectorizer", "HashingVectorizer"}
)

# numpy's reconstruction functions, under `numpy._core` (numpy >= 2, and 1.26's shim) and
# `numpy.core` (older pickles).
_NUMPY_RECONSTRUCTION: tuple[_Pair, ...] = tuple(
    (f"numpy.{core}.{module}", name)
    for core in ("_core", "core")
    for module, name in (
        ("multiarray", "_reconstruct"),
        ("multiarray", "scalar"),
        ("numeric", "_frombuffer"),
    )
) + (
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy", "matrix"),
)

# `numpy.void(n)` allocates n zeroed bytes at once; pickles name neither type (dtypes are
# pickled as `numpy.dtype("V8")`, `numpy.dtype("S5")`).
_EXCLUDED_NUMPY_SCALARS: frozenset[str] = frozenset({"void", "bytes_"})

_NUMPY_RANDOM: tuple[_Pair, ...] = (
    ("numpy.random._pickle", "__randomstate_ctor"),
    ("numpy.random._pickle", "__generator_ctor"),
    ("numpy.random._pickle", "__bit_generator_ctor"),
    ("numpy.random._mt19937", "MT19937"),
    ("numpy.random._pcg64", "PCG64"),
    ("numpy.random._pcg64", "PCG64DXSM"),
    ("numpy.random._philox", "Philox"),
    ("numpy.random._sfc64", "SFC64"),
    ("numpy.random.bit_generator", "SeedSequence"),
    ("numpy.random.bit_generator", "__pyx_unpickle_SeedSequence"),
    ("numpy.random.mtrand", "RandomState"),
    ("numpy.random._generator", "Generator"),
)

# scipy.sparse formats an estimator may hold (support vectors fitted on sparse input). The
# dictionary-of-keys format is left out: it pickles through `copyreg._reconstructor`.
_SCIPY_SPARSE_NAMES: tuple[str, ...] = tuple(
    f"{fmt}_{kind}" for fmt in ("csr", "csc", "coo", "bsr", "dia", "lil") for kind in ("matrix", "array")
)

_OTHER_TRUSTED: tuple[_Pair, ...] = (
    # joblib's placeholder for an array stored after it in the file. Not its pre-0.10
    # NDArrayWrapper / ZNDArrayWrapper, which load companion files.
    ("joblib.numpy_pickle", "NumpyArrayWrapper"),
    # Builtin value types, named by pickles (slice, set before protocol 4, complex) and by
    # estimator parameters (`dtype=float`). Not `bytes` / `bytearray` (`bytes(10**12)` allocates
    # eagerly), not `type`, `getattr`, `eval`, `exec`, `compile`, `open`, `__import__`.
    *(
        ("builtins", name)
        for name in ("slice", "set", "frozenset", "complex", "object", "int", "float", "bool", "str",
                     "list", "dict", "tuple")
    ),
    ("collections", "OrderedDict"),
    # Protocols 0-2 write every bytes object as `_codecs.encode(text, "latin1")`; resolved to
    # `_latin1_encode` below.
    ("_codecs", "encode"),
)


def _defined_in(module: types.ModuleType, predicate: Any) -> Iterator[_Pair]:
    """Exact pairs for the objects a module defines itself and `predicate` accepts."""
    for name, obj in sorted(vars(module).items()):
        if getattr(obj, "__module__", None) == module.__name__ and predicate(name, obj):
            yield module.__name__, name


def _sklearn_estimators() -> Iterator[_Pair]:
    from sklearn.utils import all_estimators

    for name, cls in all_estimators():
        if name not in _EXCLUDED_ESTIMATORS:
            yield cls.__module__, cls.__qualname__


def _sklearn_parts() -> Iterator[_Pair]:
    yield from _SKLEARN_PARTS
    for module_name in _SKLEARN_PART_MODULES:
        try:
            module = importlib.import_module(module_name)
        except ImportError:  # another scikit-learn version: its pickles name other modules
            continue
        yield from _defined_in(
            module,
            lambda name, obj: inspect.isclass(obj) or name == "newObj" or name.startswith("__pyx_unpickle_"),
        )


def _numpy_names() -> Iterator[_Pair]:
    import numpy as np

    yield from _NUMPY_RECONSTRUCTION
    yield from _NUMPY_RANDOM
    for scalar_type in set(np.sctypeDict.values()):
        name = scalar_type.__qualname__
        if getattr(np, name, None) is scalar_type and name not in _EXCLUDED_NUMPY_SCALARS:
            yield "numpy", name
    for name, obj in vars(np).items():
        if isinstance(obj, np.ufunc):
            yield "numpy", name


def _scipy_names() -> Iterator[_Pair]:
    import scipy.sparse

    for name in _SCIPY_SPARSE_NAMES:
        cls = getattr(scipy.sparse, name, None)
        if inspect.isclass(cls):
            yield cls.__module__, cls.__qualname__


def _build_trusted_globals() -> frozenset[_Pair]:
    pairs: set[_Pair] = set(_OTHER_TRUSTED)
    for source in (_sklearn_estimators, _sklearn_parts, _numpy_names, _scipy_names):
        pairs.update(source())
    return frozenset(pairs)


_trusted_lock = threading.Lock()
_trusted_cache: frozenset[_Pair] | None = None


def _default_trusted() -> frozenset[_Pair]:
    global _trusted_cache
    if _trusted_cache is None:
        with _trusted_lock:
            if _trusted_cache is None:
                _trusted_cache = _build_trusted_globals()
    return _trusted_cache


def __getattr__(name: str) -> Any:
    """Build `TRUSTED_GLOBALS` on first access, so importing this module stays cheap."""
    if name == "TRUSTED_GLOBALS":
        return _default_trusted()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# --- Checking and resolving names ------------------------------------------------------------


def _shown(module: str, name: str) -> str:
    """The global as `module.name`, safe to print (a hostile pickle chooses these strings)."""
    text = f"{module}.{name}"
    if text.isprintable() and len(text) <= 200:
        return text
    return repr(text)[:200] + "..."


def _untrusted(module: str, name: str) -> UntrustedModelError:
    shown = _shown(module, name)
    hint = f"{module}:{name}" if f"{module}:{name}".isprintable() and len(shown) <= 200 else "module:name"
    return UntrustedModelError(
        f"The model file refers to `{shown}`, which is not a trusted type or function, so it was not "
        "loaded; nothing outside the trusted set was imported or run. If the model comes from a "
        f"source you trust and `{shown}` is harmless, an operator can trust it by adding "
        f"`{hint}` to MODEL_MCP_TRUSTED_GLOBALS."
    )


def _normalize_extra(extra_trusted: Iterable[Any]) -> frozenset[_Pair]:
    pairs: set[_Pair] = set()
    for item in extra_trusted:
        if (
            isinstance(item, (tuple, list))
            and len(item) == 2
            and all(isinstance(part, str) and part for part in item)
        ):
            pairs.add((item[0], item[1]))
        else:
            raise ModelLoadFailedError(
                f"The configured trusted name {item!r} is not a (module, name) pair; fix "
                "MODEL_MCP_TRUSTED_GLOBALS (entries look like `module:name`)."
            )
    return frozenset(pairs)


def check_trusted(module: str, name: str, extra_trusted: Iterable[_Pair] = ()) -> None:
    """Raise `UntrustedModelError` unless `(module, name)` is trusted, exactly as written."""
    if (module, name) in _default_trusted():
        return
    if (module, name) in _normalize_extra(extra_trusted):
        return
    raise _untrusted(module, name)


def _latin1_encode(text: Any, encoding: str = "utf-8", errors: str = "strict") -> bytes:
    """Stand-in for `_codecs.encode`: only the latin-1 encoding that pickle writes for bytes."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1") or errors != "strict":
        raise pickle.UnpicklingError("`_codecs.encode` is only trusted for pickle's latin-1 bytes")
    return text.encode("latin-1")


_SUBSTITUTES: dict[_Pair, Any] = {("_codecs", "encode"): _latin1_encode}


def _resolve(module: str, name: str) -> Any:
    """Import an already-checked global, walking a dotted qualname attribute by attribute."""
    if (module, name) in _SUBSTITUTES:
        return _SUBSTITUTES[(module, name)]
    obj: Any = importlib.import_module(module)
    for part in name.split("."):
        obj = getattr(obj, part)
    return obj


# --- The memory budget -----------------------------------------------------------------------

_MIB = 1024 * 1024
_READ_CHUNK = _MIB  # the longest read passed to the stream at once

# Bytes charged per opcode on top of the bytes it reads: what running it can add to memory
# beyond its own data, on 64-bit CPython 3.11 (`sys.getsizeof` of what it makes, plus the
# stack, container or memo slot that holds it). Calibrated so that a stream of any one opcode
# stays under the budget (see the tests); legitimate models are dominated by their arrays.
_OPCODE_COST = 48  # a small object (an int, a float, a short string) and its slot
_OPCODE_COSTS: dict[int, int] = {
    **dict.fromkeys((pickle.EMPTY_SET[0], pickle.FROZENSET[0]), 240),
    **dict.fromkeys((pickle.EMPTY_DICT[0], pickle.DICT[0]), 80),
    **dict.fromkeys((pickle.EMPTY_LIST[0], pickle.LIST[0], pickle.MARK[0]), 72),
    **dict.fromkeys((pickle.TUPLE[0], pickle.TUPLE1[0], pickle.TUPLE2[0], pickle.TUPLE3[0]), 72),
    **dict.fromkeys((pickle.MEMOIZE[0], pickle.PUT[0], pickle.BINPUT[0], pickle.LONG_BINPUT[0]), 96),
    # A new instance (its `__dict__` is charged by BUILD, per entry).
    **dict.fromkeys(
        (pickle.REDUCE[0], pickle.NEWOBJ[0], pickle.NEWOBJ_EX[0], pickle.OBJ[0], pickle.INST[0], pickle.BUILD[0]),
        128,
    ),
}
# Opcodes that decode or copy what they read (text into a `str`, bytes into a `bytearray`):
# the object they make is charged too, after they make it (it is no larger than what was read).
_DECODING_OPCODES: frozenset[int] = frozenset(
    op[0]
    for op in (pickle.BINUNICODE, pickle.BINUNICODE8, pickle.UNICODE, pickle.STRING, pickle.BINSTRING,
               pickle.BYTEARRAY8)
)
# Per entry added by SETITEMS / DICT / BUILD (a dict slot, with the dict's spare room) and by
# ADDITEMS / FROZENSET (a set slot: sets keep more room free).
_DICT_ENTRY_COST = 64
_SET_ENTRY_COST = 112
# Per Python object a call makes out of one element of its argument (`list(array)` makes a
# numpy scalar or a row view per element), and per element of an array a numpy call converts.
_OBJECT_PER_ELEMENT_COST = 128
_NUMPY_ELEMENT_COST = 32


# Items one list, tuple, dict, set or frozenset of the stream may hold (a builtin container made by
# a call from an array or a string too), refused before the container grows past it. The largest
# container in a trusted estimator's state is its list of sub-estimators or an object array's items:
# 1,000 in a 1,000-tree IsolationForest, 22 to 50 in the fixture models; arrays of numbers are
# stored outside the pickle's containers.
MAX_CONTAINER_ITEMS = 1_000_000


class _Budget:
    """The bytes one load may materialize, and how many it has used.

    Charged: every byte read from the decompressed stream, the size of every array before it
    is allocated, and `_OPCODE_COSTS` per opcode for the Python objects the stream builds. The
    bytes of an array joblib stores after its wrapper are charged once, as the array:
    `prepaid` lets the stream reads that fill it through.
    """

    __slots__ = ("limit", "used", "prepaid", "name", "max_items")

    def __init__(self, limit: int | None, name: str, max_items: int = MAX_CONTAINER_ITEMS) -> None:
        self.limit = sys.maxsize if limit is None else limit
        self.used = 0
        self.prepaid = 0
        self.name = name
        self.max_items = max_items

    def check_items(self, target: Any, adding: int) -> None:
        """Refuse before a builtin container grows past `max_items` (other targets are not sized)."""
        held = len(target) if type(target) in _CONTAINER_TYPES else 0
        if held + adding > self.max_items:
            kind = type(target).__name__ if type(target) in _CONTAINER_TYPES else "container"
            raise ModelLoadFailedError(
                f"{self.name} builds a {kind} of more than {self.max_items} items, more than any trusted "
                "model state holds (a model's largest is its list of sub-estimators), so it was not loaded."
            )

    def charge(self, nbytes: int) -> None:
        self.used += nbytes
        if self.used > self.limit:
            raise self.exceeded()

    def charge_read(self, nbytes: int) -> None:
        covered = min(nbytes, self.prepaid)
        self.prepaid -= covered
        self.charge(nbytes - covered)

    def exceeded(self) -> ModelLoadFailedError:
        if self.limit % _MIB == 0:
            limit = f"{self.limit // _MIB} MiB"
        else:
            limit = f"{self.limit} bytes"
        return ModelLoadFailedError(
            f"{self.name} would unpack to more than {limit} (the limit, MODEL_MCP_MAX_UNPACKED_BYTES), "
            "so it was not loaded. If the model is genuine and this large, an operator can raise "
            "MODEL_MCP_MAX_UNPACKED_BYTES."
        )


def _charging(handler: Any, cost: int) -> Any:
    """An opcode handler that charges `cost` to the load's budget before it runs."""

    def run(self: Any) -> None:
        budget = self._budget
        budget.used += cost
        if budget.used > budget.limit:
            raise budget.exceeded()
        handler(self)

    return run


def _charging_result(handler: Any) -> Any:
    """An opcode handler that charges the size of the object it pushed, once it has run."""

    def run(self: Any) -> None:
        handler(self)
        self._budget.charge(sys.getsizeof(self.stack[-1]))

    return run


# Inside joblib's own compressed stream: more than this many bytes out per byte in, once 32 MiB
# have come out, is a bomb (a 1 MB file holding one 1 GiB byte string). The same figure as the
# archive's member ratio (MODEL_MCP_MAX_RATIO's default); real models' arrays compress 2 to 20x,
# and the floor lets a model hold a few MiB of zeros (which zlib shrinks ~1000x).
MAX_STREAM_RATIO = 200.0
_RATIO_FLOOR = 32 * _MIB
# One read the pickle asks for (a byte or text string announced by BINBYTES8, BINUNICODE8,
# BYTEARRAY8...) above this is refused before anything is read: joblib stores arrays outside the
# pickle's opcodes, and no trusted estimator's own state holds a string this long.
MAX_STRING_BYTES = 256 * _MIB


class _CountingReader:
    """The stream joblib hands the unpickler, charging each byte read to the budget.

    Reads longer than `_READ_CHUNK` go chunk by chunk, each charged as it arrives, so an opcode
    that announces a huge length (BINBYTES8, FRAME, a line with no end) stops at the budget
    instead of making the decompressor produce it first. Chunks also keep a long read at about
    twice its size while it is assembled (joblib's decompressors, asked for n bytes at once,
    hold three copies of them).
    """

    def __init__(self, stream: Any, budget: _Budget, compressed: Any = None) -> None:
        self._stream = stream
        self._budget = budget
        # The file under joblib's decompressor (None when the file is not compressed): its
        # position says how many compressed bytes produced what was read so far.
        self._compressed = compressed
        self._out = 0

    def _count(self, nbytes: int) -> None:
        self._budget.charge_read(nbytes)
        self._out += nbytes
        if self._compressed is not None and self._out > _RATIO_FLOOR:
            consumed = max(1, self._compressed.tell())
            if self._out > MAX_STREAM_RATIO * consumed:
                raise ModelLoadFailedError(
                    f"{self._budget.name} inflates more than {MAX_STREAM_RATIO:g} times inside its own "
                    f"compression ({self._out} bytes out of {consumed}); this looks like a decompression "
                    "bomb, so it was not loaded."
                )

    def read(self, size: int | None = -1) -> bytes:
        if size is not None and 0 <= size <= _READ_CHUNK:
            data = self._stream.read(size)
            self._count(len(data))
            return data
        if size is not None and size > MAX_STRING_BYTES:
            raise ModelLoadFailedError(
                f"{self._budget.name} announces a single object of {size} bytes, more than the "
                f"{MAX_STRING_BYTES} any trusted model state holds in one string; it was not loaded."
            )
        left = sys.maxsize if size is None or size < 0 else size
        chunks: list[bytes] = []
        while left > 0:
            data = self._stream.read(min(left, _READ_CHUNK))
            if not data:
                break
            self._count(len(data))
            chunks.append(data)
            left -= len(data)
        return b"".join(chunks)

    def readline(self, size: int | None = -1) -> bytes:
        left = sys.maxsize if size is None or size < 0 else size
        chunks: list[bytes] = []
        while left > 0:
            data = self._stream.readline(min(left, _READ_CHUNK))
            if not data:
                break
            self._count(len(data))
            chunks.append(data)
            left -= len(data)
            if data.endswith(b"\n"):
                break
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _array_nbytes(shape: Any, dtype: Any) -> int:
    """The bytes numpy allocates for `shape` x `dtype`, computed before it does.

    Raises `UnpicklingError` for what numpy would refuse anyway, so nothing unparsed slips by.
    """
    import numpy as np

    try:
        dims = (operator.index(shape),) if not isinstance(shape, (tuple, list)) else tuple(
            operator.index(n) for n in shape
        )
        itemsize = np.dtype(dtype).itemsize
    except (TypeError, ValueError, OverflowError) as exc:
        raise pickle.UnpicklingError("an array in the model file has an invalid shape or dtype") from exc
    if any(n < 0 for n in dims):
        raise pickle.UnpicklingError("an array in the model file has a negative dimension")
    return math.prod(dims) * itemsize


def _state_nbytes(state: Any) -> int:
    """The bytes `ndarray.__setstate__` allocates: the shape and dtype its state declares.

    Nothing when the data is a `bytes` object of exactly that size in native byte order: numpy
    keeps it as the array's buffer, and the stream already paid for it. An object array's list,
    or data numpy must copy or swap, costs the array's size once more.
    """
    if not (isinstance(state, tuple) and len(state) in (4, 5)):
        return 0  # numpy refuses any other state before allocating
    shape, dtype, data = state[-4], state[-3], state[-1]
    nbytes = _array_nbytes(shape, dtype)
    if getattr(dtype, "hasobject", False) and isinstance(data, list) and nbytes:
        # numpy (2.4) reads one list item per element without checking the list's length: a
        # shorter list leaves pointers unset and crashes the process (SIGSEGV).
        if len(data) != nbytes // dtype.itemsize:
            raise pickle.UnpicklingError("an object array in the model file has the wrong number of items")
    reused = isinstance(data, bytes) and len(data) == nbytes and getattr(dtype, "isnative", False)
    return 0 if reused else nbytes


def _element_bound(value: Any, cache: dict[int, int], depth: int = 0) -> int:
    """An upper bound on the elements numpy makes of `value`, without converting it.

    Nested lists count as `len` times their largest item, each list once (a list repeated
    through the memo is counted by id, so the walk costs what the stream paid for).
    """
    import numpy as np

    if isinstance(value, np.ndarray):
        return value.size
    if isinstance(value, (list, tuple)):
        key = id(value)
        if key in cache:
            return cache[key]
        cache[key] = len(value)  # provisional: a list that contains itself stops here
        if depth < 64 and value:
            cache[key] = len(value) * max(_element_bound(item, cache, depth + 1) for item in value)
        return cache[key]
    if isinstance(value, (str, bytes, bytearray, dict, set, frozenset)):
        return max(len(value), 1)
    return 1


def _numpy_reconstruct() -> Any:
    """numpy's `_reconstruct`, as its arrays' `__reduce__` names it (both spellings resolve to it)."""
    global _reconstruct_cache
    if _reconstruct_cache is None:
        import numpy as np

        _reconstruct_cache = np.empty(0).__reduce__()[0]
    return _reconstruct_cache


_reconstruct_cache: Any = None

# Builtin containers a call can fill from an array or a string, one object per element.
_CONTAINER_TYPES: tuple[type, ...] = (list, tuple, set, frozenset, dict, collections.OrderedDict)


def _container_call_items(args: tuple[Any, ...]) -> int:
    """Items a builtin container call makes of an array (its first axis), a string or a container."""
    numpy = sys.modules.get("numpy")
    items = 0
    for arg in args:
        if numpy is not None and isinstance(arg, numpy.ndarray):
            items += len(arg) if arg.ndim else 1
        elif isinstance(arg, (str, bytes, bytearray, *_CONTAINER_TYPES)):
            items += len(arg)
    return items


def _call_nbytes(func: Any, args: Any, kwargs: Any) -> int:
    """Bytes a trusted call may allocate beyond its arguments, estimated before it runs.

    Only callables whose allocation follows a number or a shape in their arguments rather than
    their size in the stream: numpy's array constructors, ufuncs (which broadcast), numpy
    scalar types and `numpy.matrix` (which convert their argument), builtin containers made
    from an array, and scipy's sparse classes given a shape. Legitimate pickles call only
    `_reconstruct` with shape `(0,)`; the others are charged so that no call escapes the budget.
    """
    import numpy as np

    if not isinstance(args, tuple):
        return 0  # pickle refuses the call itself
    if not isinstance(kwargs, dict):
        kwargs = {}
    if func is _numpy_reconstruct():  # _reconstruct(subtype, shape, dtype)
        return _array_nbytes(args[1], args[2]) if len(args) == 3 else 0
    cache: dict[int, int] = {}
    if isinstance(func, np.ufunc):
        sizes = [_element_bound(arg, cache) for arg in args]
        return math.prod(sizes) * func.nout * _NUMPY_ELEMENT_COST
    if not isinstance(func, type):
        return 0
    if func is np.ndarray:
        shape = args[0] if args else kwargs.get("shape", ())
        dtype = args[1] if len(args) > 1 else kwargs.get("dtype", float)
        return _array_nbytes(shape, dtype)
    if issubclass(func, (np.ndarray, np.generic)):
        return sum(_element_bound(arg, cache) for arg in args) * _NUMPY_ELEMENT_COST
    if func in _CONTAINER_TYPES:  # one object per item of an array's first axis, or per character
        items = sum(
            (len(arg) if arg.ndim else 1) if isinstance(arg, np.ndarray) else len(arg)
            for arg in args
            if isinstance(arg, (np.ndarray, str, bytes, bytearray))
        )
        return items * _OBJECT_PER_ELEMENT_COST
    if str(getattr(func, "__module__", "")).startswith("scipy.sparse"):
        shape = args[0] if args else kwargs.get("shape")
        if isinstance(shape, tuple) and len(shape) == 2 and all(isinstance(n, int) for n in shape):
            return (abs(shape[0]) + abs(shape[1]) + 2) * _OBJECT_PER_ELEMENT_COST  # lil: a list per row
        return 4 * sum(_element_bound(arg, cache) for arg in args) * _NUMPY_ELEMENT_COST
    return 0


# --- The unpicklers --------------------------------------------------------------------------


class _RestrictedPolicy:
    """What both unpicklers share: the name check, refusals of the other ways in, the budget.

    Mixed into a `pickle._Unpickler` subclass (the pure-Python one, whose opcode table can be
    extended); `_install` puts the guarded opcodes into that subclass's own table.
    """

    stack: list[Any]
    metastack: list[list[Any]]
    proto: int
    _trusted: frozenset[_Pair]
    _resolved_ids: set[int]
    _budget: _Budget

    def _init_policy(self, trusted: frozenset[_Pair], budget: _Budget) -> None:
        self._trusted = trusted
        self._budget = budget
        # Ids of the globals this load resolved; the objects live in their modules, so the
        # ids stay valid for the whole load.
        self._resolved_ids = set()

    def find_class(self, module: str, name: str) -> Any:
        if not isinstance(module, str) or not isinstance(name, str):
            raise pickle.UnpicklingError("a global's module and name must be strings")
        if self.proto < 3:  # Python 2 names, mapped as pickle's fix_imports does
            if (module, name) in _compat_pickle.NAME_MAPPING:
                module, name = _compat_pickle.NAME_MAPPING[(module, name)]
            elif module in _compat_pickle.IMPORT_MAPPING:
                module = _compat_pickle.IMPORT_MAPPING[module]
        if (module, name) not in self._trusted:
            raise _untrusted(module, name)
        obj = _resolve(module, name)
        self._resolved_ids.add(id(obj))
        return obj

    def persistent_load(self, pid: Any) -> Any:
        raise pickle.UnpicklingError("the model file uses a persistent id, which is never resolved")

    def _guard_target(self, target: Any) -> None:
        """Refuse to mutate a class, function, module or resolved global (shared state)."""
        if (
            id(target) in self._resolved_ids
            or isinstance(target, (type, types.ModuleType))
            or inspect.isroutine(target)
        ):
            module = getattr(target, "__module__", None) or type(target).__module__
            name = getattr(target, "__qualname__", None) or type(target).__qualname__
            raise UntrustedModelError(
                f"The model file tries to change `{_shown(str(module), str(name))}` itself (a "
                "class, function or module every model shares), so it was not loaded; nothing "
                "outside the trusted set was imported or run."
            )

    def _mark_target(self) -> Any:
        """The object below the topmost MARK: the target of APPENDS, SETITEMS and ADDITEMS."""
        return self.metastack[-1][-1]

    def _load_build_guarded(self) -> None:
        target, state = self.stack[-2], self.stack[-1]
        self._guard_target(target)
        self._charge_build(target, state)
        pickle._Unpickler.load_build(self)  # type: ignore[attr-defined]

    def _charge_build(self, target: Any, state: Any) -> None:
        """Charge what BUILD allocates: an array's data, or a copy of the state into `__dict__`."""
        numpy = sys.modules.get("numpy")
        if numpy is not None and isinstance(target, numpy.ndarray):
            self._budget.charge(_state_nbytes(state))
            return
        if isinstance(state, tuple) and len(state) == 2:  # (state, slotstate)
            entries = sum(len(part) for part in state if isinstance(part, dict))
        else:
            entries = len(state) if isinstance(state, dict) else 0
        self._budget.charge(entries * _DICT_ENTRY_COST)

    def _load_reduce(self) -> None:
        self._check_call_items(self.stack[-2], self.stack[-1])
        self._budget.charge(_call_nbytes(self.stack[-2], self.stack[-1], {}))
        pickle._Unpickler.load_reduce(self)  # type: ignore[attr-defined]
        if isinstance(self.stack[-1], (str, bytes, bytearray)):  # `_codecs.encode`'s bytes, `str(x)`
            self._budget.charge(sys.getsizeof(self.stack[-1]))

    def _load_newobj(self) -> None:
        self._check_call_items(self.stack[-2], self.stack[-1])
        self._budget.charge(_call_nbytes(self.stack[-2], self.stack[-1], {}))
        pickle._Unpickler.load_newobj(self)  # type: ignore[attr-defined]

    def _load_newobj_ex(self) -> None:
        self._check_call_items(self.stack[-3], self.stack[-2])
        self._budget.charge(_call_nbytes(self.stack[-3], self.stack[-2], self.stack[-1]))
        pickle._Unpickler.load_newobj_ex(self)  # type: ignore[attr-defined]

    def _check_call_items(self, func: Any, args: Any) -> None:
        """`list(array)`, `dict(...)`, `tuple(text)`: the container a call makes, before it does."""
        if func in _CONTAINER_TYPES and isinstance(args, tuple):
            self._budget.check_items(func(), _container_call_items(args))

    def _instantiate(self, klass: Any, args: Any) -> None:
        """OBJ and INST (protocols 0 and 1) call `klass(*args)` through here."""
        self._check_call_items(klass, tuple(args))
        self._budget.charge(_call_nbytes(klass, tuple(args), {}))
        pickle._Unpickler._instantiate(self, klass, args)  # type: ignore[attr-defined]

    # The item cap: `self.stack` holds the items since the topmost MARK (pickle moves the rest to
    # metastack), so each check runs before the container is made or extended by them.
    def _load_append(self) -> None:
        self._guard_target(self.stack[-2])
        self._budget.check_items(self.stack[-2], 1)
        pickle._Unpickler.load_append(self)  # type: ignore[attr-defined]

    def _load_appends(self) -> None:
        self._guard_target(self._mark_target())
        self._budget.check_items(self._mark_target(), len(self.stack))
        pickle._Unpickler.load_appends(self)  # type: ignore[attr-defined]

    def _load_setitem(self) -> None:
        self._guard_target(self.stack[-3])
        self._budget.check_items(self.stack[-3], 1)
        self._budget.charge(_DICT_ENTRY_COST)
        pickle._Unpickler.load_setitem(self)  # type: ignore[attr-defined]

    def _load_setitems(self) -> None:
        self._guard_target(self._mark_target())
        self._budget.check_items(self._mark_target(), len(self.stack) // 2)
        self._budget.charge(len(self.stack) // 2 * _DICT_ENTRY_COST)  # the items since the MARK
        pickle._Unpickler.load_setitems(self)  # type: ignore[attr-defined]

    def _load_additems(self) -> None:
        self._guard_target(self._mark_target())
        self._budget.check_items(self._mark_target(), len(self.stack))
        self._budget.charge(len(self.stack) * _SET_ENTRY_COST)
        pickle._Unpickler.load_additems(self)  # type: ignore[attr-defined]

    def _load_dict(self) -> None:
        self._budget.check_items({}, len(self.stack) // 2)
        self._budget.charge(len(self.stack) // 2 * _DICT_ENTRY_COST)
        pickle._Unpickler.load_dict(self)  # type: ignore[attr-defined]

    def _load_frozenset(self) -> None:
        self._budget.check_items(frozenset(), len(self.stack))
        self._budget.charge(len(self.stack) * _SET_ENTRY_COST)
        pickle._Unpickler.load_frozenset(self)  # type: ignore[attr-defined]

    def _load_tuple(self) -> None:
        self._budget.check_items((), len(self.stack))
        pickle._Unpickler.load_tuple(self)  # type: ignore[attr-defined]

    def _load_list(self) -> None:
        self._budget.check_items([], len(self.stack))
        pickle._Unpickler.load_list(self)  # type: ignore[attr-defined]

    def _load_ext(self) -> None:
        raise UntrustedModelError(
            "The model file names a global through a pickle extension code, which is never "
            "trusted, so it was not loaded; nothing outside the trusted set was imported or run."
        )

    @classmethod
    def _install(cls, dispatch: dict[int, Any], build: Any) -> dict[int, Any]:
        """The opcode table: guarded handlers, each charging its cost to the budget first."""
        table = dict(dispatch)
        table[pickle.BUILD[0]] = build
        table[pickle.APPEND[0]] = cls._load_append
        table[pickle.APPENDS[0]] = cls._load_appends
        table[pickle.SETITEM[0]] = cls._load_setitem
        table[pickle.SETITEMS[0]] = cls._load_setitems
        table[pickle.ADDITEMS[0]] = cls._load_additems
        table[pickle.DICT[0]] = cls._load_dict
        table[pickle.FROZENSET[0]] = cls._load_frozenset
        table[pickle.TUPLE[0]] = cls._load_tuple
        table[pickle.LIST[0]] = cls._load_list
        table[pickle.REDUCE[0]] = cls._load_reduce
        table[pickle.NEWOBJ[0]] = cls._load_newobj
        table[pickle.NEWOBJ_EX[0]] = cls._load_newobj_ex
        for opcode in (pickle.EXT1, pickle.EXT2, pickle.EXT4):
            table[opcode[0]] = cls._load_ext
        for code in _DECODING_OPCODES:
            table[code] = _charging_result(table[code])
        return {
            code: _charging(handler, _OPCODE_COSTS.get(code, _OPCODE_COST)) for code, handler in table.items()
        }


class _RestrictedUnpickler(_RestrictedPolicy, pickle._Unpickler):  # type: ignore[name-defined,misc]
    """A plain pickle stream under the policy: joblib's nested object-array streams."""

    def __init__(self, file: Any, trusted: frozenset[_Pair], budget: _Budget) -> None:
        pickle._Unpickler.__init__(self, file)  # type: ignore[attr-defined]
        self._init_policy(trusted, budget)

    dispatch = _RestrictedPolicy._install(
        pickle._Unpickler.dispatch,  # type: ignore[attr-defined]
        _RestrictedPolicy._load_build_guarded,
    )


def _joblib_unpickler_class() -> type:
    """The joblib-backed unpickler, defined on first use so importing this module is cheap."""
    from joblib.numpy_pickle import NumpyArrayWrapper, NumpyUnpickler

    class _TrustedNumpyUnpickler(_RestrictedPolicy, NumpyUnpickler):
        """joblib's unpickler (arrays stored after their wrapper, compression) under the policy."""

        def __init__(self, filename: str, file_handle: Any, trusted: frozenset[_Pair], budget: _Budget) -> None:
            NumpyUnpickler.__init__(self, filename, file_handle, True, mmap_mode=None)
            self._init_policy(trusted, budget)

        def _load_build_array(self) -> None:
            """BUILD, then swap a NumpyArrayWrapper for the array stored after it."""
            self._load_build_guarded()
            if type(self.stack[-1]) is NumpyArrayWrapper:
                self.stack[-1] = self._read_array(self.stack[-1])

        def _read_array(self, wrapper: Any) -> Any:
            np = self.np
            dtype, shape = getattr(wrapper, "dtype", None), getattr(wrapper, "shape", None)
            if not isinstance(dtype, np.dtype) or not (
                isinstance(shape, tuple) and all(isinstance(n, int) and n >= 0 for n in shape)
            ):
                raise pickle.UnpicklingError("a stored array has an invalid dtype or shape")
            if getattr(wrapper, "order", None) not in ("C", "F"):
                raise pickle.UnpicklingError("a stored array has an invalid order")
            if not dtype.hasobject:
                # Raw bytes read by joblib's own code (alignment padding, byte order), charged
                # as the array before it is allocated; the reads that fill it are prepaid.
                nbytes = math.prod(shape) * dtype.itemsize
                self._budget.charge(nbytes if dtype.isnative else 2 * nbytes)  # a byte swap copies
                self._budget.prepaid = nbytes
                try:
                    return wrapper.read(self, self.ensure_native_byte_order)
                finally:
                    self._budget.prepaid = 0
            # Objects: a nested pickle stream, read under the same policy (never pickle.load);
            # its opcodes and the array it rebuilds are charged like the outer stream's.
            array = _RestrictedUnpickler(self.file_handle, self._trusted, self._budget).load()
            if not isinstance(array, np.ndarray):
                raise pickle.UnpicklingError("a stored object array did not hold an array")
            return array

        dispatch = _RestrictedPolicy._install(NumpyUnpickler.dispatch, _load_build_array)

    return _TrustedNumpyUnpickler


_unpickler_class: type | None = None


def _trusted_numpy_unpickler() -> type:
    global _unpickler_class
    if _unpickler_class is None:
        with _trusted_lock:
            if _unpickler_class is None:
                _unpickler_class = _joblib_unpickler_class()
    return _unpickler_class


# --- Loading ---------------------------------------------------------------------------------

# joblib's format before 0.10 starts with this; it loads arrays from companion files.
_JOBLIB_COMPAT_PREFIX = b"ZF"


def _load(path: Path, trusted: frozenset[_Pair], budget: _Budget) -> Any:
    from joblib.numpy_pickle_utils import _validate_fileobject_and_memmap

    with open(path, "rb") as raw:
        head = raw.read(len(_JOBLIB_COMPAT_PREFIX))
        raw.seek(0)
        if head == _JOBLIB_COMPAT_PREFIX:
            raise ModelLoadFailedError(
                "The model file uses joblib's format from before version 0.10, which is not "
                "supported; save the model again with a current joblib."
            )
        # joblib picks the decompressor from the file's magic bytes, as joblib.load does.
        with _validate_fileobject_and_memmap(raw, str(path), None) as (fobj, _):
            if isinstance(fobj, str):  # the compat format, in case joblib's detection differs
                raise ModelLoadFailedError("The model file uses joblib's unsupported pre-0.10 format.")
            reader = _CountingReader(fobj, budget, compressed=raw if fobj is not raw else None)
            unpickler = _trusted_numpy_unpickler()(str(path), reader, trusted, budget)
            return unpickler.load()


def _describe_failure(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        detail = exc.strerror  # without the file name: no paths in answers
    elif isinstance(exc, EOFError):
        detail = "the file ends before the pickle does (truncated?)"
    elif isinstance(exc, MemoryError):
        detail = "it needs more memory than is available"
    else:
        detail = f"{type(exc).__name__}: {exc}"
    if len(detail) > 300:
        detail = detail[:300] + "..."
    return detail


def _checked_budget(max_bytes: Any, path: Path, max_items: int = MAX_CONTAINER_ITEMS) -> _Budget:
    if max_bytes is not None and (isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes < 0):
        raise ModelLoadFailedError(
            f"The configured unpacked-size limit {max_bytes!r} is not a byte count; fix "
            "MODEL_MCP_MAX_UNPACKED_BYTES."
        )
    name = path.name if path.name.isprintable() and 0 < len(path.name) <= 100 else "The model file"
    return _Budget(max_bytes, name, max_items)


def load_trusted(path: str | Path, extra_trusted: Iterable[_Pair] = (), *, max_bytes: int | None = None,
                 max_items: int = MAX_CONTAINER_ITEMS) -> Any:
    """Load a joblib file (compressed or not, or a plain pickle) resolving only trusted globals.

    Raises `UntrustedModelError` naming `module.name` when the file refers to anything outside
    `TRUSTED_GLOBALS` and `extra_trusted`, before that name is imported; `ModelLoadFailedError`
    for anything else that goes wrong (missing or truncated file, not a pickle, a trusted
    constructor that fails, out of memory, over `max_bytes`). No other exception type escapes.

    `max_bytes` bounds what the load materializes (see "The memory budget" in the module
    docstring); `None` means no bound. The server passes `Settings.max_unpacked_bytes`. Going
    over it is `model_load_failed`, not `archive_too_large`: that code is about the upload
    (its size, members, ratios), which was within its limits; what fails is unpacking the
    model inside it, and the contract reports every model that does not load as
    `model_load_failed`, which is also what a client sees for the same model as a folder.
    `max_items` caps every container the stream builds (`MAX_CONTAINER_ITEMS` unless a test asks less).
    """
    path = Path(path)
    try:
        trusted = _default_trusted() | _normalize_extra(extra_trusted)
        return _load(path, trusted, _checked_budget(max_bytes, path, max_items))
    except ModelMcpError:
        raise
    except Exception as exc:  # noqa: BLE001 - every failure becomes model_load_failed
        raise ModelLoadFailedError(f"The model file could not be loaded: {_describe_failure(exc)}.") from exc

