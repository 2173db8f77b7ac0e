"""Trusted-type loading of model.joblib: real models round-trip, hostile pickles never run.

Every hostile payload here would write a marker file in tmp_path if anything in it ran; each
test checks that the loader answers `untrusted_model`, names the global, and that the marker
never appears. Payloads are built either by a class whose `__reduce__` names the function (what
an attacker's pickler writes) or opcode by opcode (for spellings no pickler writes).
"""

from __future__ import annotations

import collections
import os
import pickle
import random
import struct
import sys
import tracemalloc
import uuid
import zlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pytest
from joblib.numpy_pickle import NumpyArrayWrapper, NumpyUnpickler
from sklearn.ensemble import IsolationForest
from sklearn.neighbors import LocalOutlierFactor
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import OneClassSVM

from model_mcp.core.errors import ModelLoadFailedError, UntrustedModelError
from model_mcp.core.unpickler import MAX_CONTAINER_ITEMS, TRUSTED_GLOBALS, check_trusted, load_trusted

# --- Fixture models ------------------------------------------------------------------------


def _data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.RandomState(0)
    train = rng.normal(size=(300, 4))
    probe = np.vstack([rng.normal(size=(40, 4)), rng.normal(scale=6.0, size=(10, 4))])
    return train, probe


def _fit_models() -> dict[str, Any]:
    train, _ = _data()
    return {
        "iforest": IsolationForest(n_estimators=50, random_state=0).fit(train),
        "pipeline": Pipeline(
            [("scale", StandardScaler()), ("forest", IsolationForest(n_estimators=50, random_state=0))]
        ).fit(train),
        "ocsvm": OneClassSVM(nu=0.1).fit(train),
        "lof": LocalOutlierFactor(novelty=True).fit(train),
    }


@pytest.fixture(scope="module")
def models() -> dict[str, Any]:
    return _fit_models()


@pytest.fixture(scope="module")
def probe() -> np.ndarray:
    return _data()[1]


@pytest.fixture
def marker(tmp_path: Path) -> Path:
    return tmp_path / "pwned"


def _assert_same_predictions(loaded: Any, original: Any, probe: np.ndarray) -> None:
    assert type(loaded) is type(original)
    np.testing.assert_array_equal(loaded.predict(probe), original.predict(probe))
    np.testing.assert_array_equal(loaded.decision_function(probe), original.decision_function(probe))
    np.testing.assert_array_equal(loaded.score_samples(probe), original.score_samples(probe))


# --- Payload builders ----------------------------------------------------------------------


class _Call:
    """Pickles as `func(*args)`: what a hostile `__reduce__` writes."""

    def __init__(self, func: Callable[..., Any], *args: Any) -> None:
        self.func, self.args = func, args

    def __reduce__(self) -> tuple[Any, ...]:
        return self.func, self.args


class _Harmless:
    """A test-module class: untrusted by default, trusted when configured."""

    def __init__(self, value: int) -> None:
        self.value = value


def _text(value: str) -> bytes:
    """SHORT_BINUNICODE / BINUNICODE for one string."""
    data = value.encode()
    if len(data) < 256:
        return b"\x8c" + bytes([len(data)]) + data
    return b"X" + struct.pack("<I", len(data)) + data


def _stack_global(module: str, name: str) -> bytes:
    return _text(module) + _text(name) + b"\x93"


def _value(obj: Any) -> bytes:
    """The opcodes that push `obj` (a protocol-2 dump without PROTO and STOP)."""
    return pickle.dumps(obj, protocol=2)[2:-1]


def _args(args: tuple[Any, ...]) -> bytes:
    return _value(args)


def _call(module: str, name: str, *args: Any) -> bytes:
    """Protocol 4: STACK_GLOBAL module name, then REDUCE with args."""
    return b"\x80\x04" + _stack_global(module, name) + _args(args) + b"R."


def _touch(marker: Path) -> str:
    return f"touch {marker}"


def _write(tmp_path: Path, payload: bytes, name: str = "model.joblib") -> Path:
    path = tmp_path / name
    path.write_bytes(payload)
    return path


def _assert_refused(path: Path, shown: str, marker: Path | None = None, **kwargs: Any) -> None:
    with pytest.raises(UntrustedModelError) as info:
        load_trusted(path, **kwargs)
    assert info.value.code == "untrusted_model"
    assert f"`{shown}`" in str(info.value)
    if marker is not None:
        assert not marker.exists()


# --- Real models round-trip ----------------------------------------------------------------


@pytest.mark.parametrize("kind", ["iforest", "pipeline", "ocsvm", "lof"])
@pytest.mark.parametrize("compress", [0, 3])
def test_fixture_models_round_trip_with_equal_predictions(
    tmp_path: Path, models: dict[str, Any], probe: np.ndarray, kind: str, compress: int
) -> None:
    path = tmp_path / "model.joblib"
    joblib.dump(models[kind], path, compress=compress)
    _assert_same_predictions(load_trusted(path), models[kind], probe)


@pytest.mark.parametrize("compress", [0, ("gzip", 3), ("bz2", 3), ("lzma", 3), ("xz", 3)])
def test_every_joblib_compressor_loads(
    tmp_path: Path, models: dict[str, Any], probe: np.ndarray, compress: Any
) -> None:
    path = tmp_path / "model.joblib"
    joblib.dump(models["iforest"], path, compress=compress)
    _assert_same_predictions(load_trusted(str(path)), models["iforest"], probe)


def test_a_plain_pickle_file_loads(tmp_path: Path, models: dict[str, Any], probe: np.ndarray) -> None:
    path = _write(tmp_path, pickle.dumps(models["pipeline"], protocol=5))
    _assert_same_predictions(load_trusted(path), models["pipeline"], probe)


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_protocols_2_to_5_load(
    tmp_path: Path, models: dict[str, Any], probe: np.ndarray, protocol: int
) -> None:
    path = tmp_path / "model.joblib"
    joblib.dump(models["pipeline"], path, protocol=protocol)
    _assert_same_predictions(load_trusted(path), models["pipeline"], probe)


@pytest.mark.parametrize("protocol", [0, 1])
def test_protocols_0_and_1_need_copyreg_reconstructor_trusted_by_the_operator(
    tmp_path: Path, models: dict[str, Any], probe: np.ndarray, protocol: int
) -> None:
    path = tmp_path / "model.joblib"
    joblib.dump(models["lof"], path, protocol=protocol)
    _assert_refused(path, "copyreg._reconstructor")
    loaded = load_trusted(path, extra_trusted=[("copyreg", "_reconstructor")])
    _assert_same_predictions(loaded, models["lof"], probe)


def test_object_arrays_stored_by_joblib_load_through_the_restricted_stream(
    tmp_path: Path, models: dict[str, Any], probe: np.ndarray
) -> None:
    """joblib writes object arrays as a nested pickle stream; trusted content loads."""
    values = np.array(["a", 1.5, None, ("x", 2)], dtype=object)
    path = tmp_path / "model.joblib"
    joblib.dump({"model": models["iforest"], "values": values}, path, compress=3)
    loaded = load_trusted(path)
    assert loaded["values"].dtype == object
    assert loaded["values"].tolist() == ["a", 1.5, None, ("x", 2)]
    _assert_same_predictions(loaded["model"], models["iforest"], probe)


def test_numpy_random_state_and_generator_attributes_load(tmp_path: Path) -> None:
    state = np.random.RandomState(7)
    generator = np.random.default_rng(7)
    path = tmp_path / "model.joblib"
    joblib.dump({"state": state, "generator": generator, "scalar": np.float32(2.5)}, path)
    loaded = load_trusted(path)
    assert loaded["state"].randint(1_000_000) == np.random.RandomState(7).randint(1_000_000)
    assert loaded["generator"].integers(1_000_000) == np.random.default_rng(7).integers(1_000_000)
    assert loaded["scalar"] == np.float32(2.5) and type(loaded["scalar"]) is np.float32


def test_concurrent_loads_are_independent(
    tmp_path: Path, models: dict[str, Any], probe: np.ndarray, marker: Path
) -> None:
    good = {kind: tmp_path / f"{kind}.joblib" for kind in models}
    for kind, path in good.items():
        joblib.dump(models[kind], path, compress=3 if kind == "pipeline" else 0)
    bad = _write(tmp_path, pickle.dumps(_Call(os.system, _touch(marker)), protocol=5), "bad.joblib")

    def attempt(path: Path) -> Any:
        try:
            return load_trusted(path)
        except UntrustedModelError as exc:
            return exc

    paths = [bad, *good.values()] * 3
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(attempt, paths))
    for path, result in zip(paths, results):
        if path == bad:
            assert isinstance(result, UntrustedModelError) and "`posix.system`" in str(result)
        else:
            _assert_same_predictions(result, models[path.stem], probe)
    assert not marker.exists()


def test_joblib_itself_is_not_patched(tmp_path: Path, models: dict[str, Any]) -> None:
    """Other callers of joblib keep joblib's own unpickler: nothing is swapped per call."""
    build_before = NumpyUnpickler.dispatch[pickle.BUILD[0]]
    read_before = NumpyArrayWrapper.read_array
    path = tmp_path / "model.joblib"
    joblib.dump(models["iforest"], path)
    load_trusted(path)
    assert NumpyUnpickler.dispatch[pickle.BUILD[0]] is build_before
    assert NumpyArrayWrapper.read_array is read_before
    assert "find_class" not in vars(NumpyUnpickler)


# --- Hostile pickles -----------------------------------------------------------------------


def test_os_system_spelled_as_written_is_refused(tmp_path: Path, marker: Path) -> None:
    path = _write(tmp_path, b"cos\nsystem\n" + _args((_touch(marker),)) + b"R.")
    _assert_refused(path, "os.system", marker)


@pytest.mark.parametrize("protocol", [0, 1, 2, 3, 4, 5])
def test_os_system_is_refused_at_every_protocol(tmp_path: Path, marker: Path, protocol: int) -> None:
    path = _write(tmp_path, pickle.dumps(_Call(os.system, _touch(marker)), protocol=protocol))
    _assert_refused(path, "posix.system", marker)


@pytest.mark.parametrize("protocol", [0, 1, 2, 3, 4, 5])
@pytest.mark.parametrize("func", [exec, eval], ids=["exec", "eval"])
def test_builtins_exec_and_eval_are_refused_at_every_protocol(
    tmp_path: Path, marker: Path, protocol: int, func: Callable[..., Any]
) -> None:
    """Protocols below 3 spell builtins `__builtin__`; the name is mapped, then refused."""
    code = f"open({str(marker)!r}, 'w').close()"
    path = _write(tmp_path, pickle.dumps(_Call(func, code), protocol=protocol))
    _assert_refused(path, f"builtins.{func.__name__}", marker)


def test_getattr_chain_is_refused(tmp_path: Path, marker: Path) -> None:
    """getattr(__import__("os"), "system")("touch ...")."""
    payload = (
        b"\x80\x04"
        + _stack_global("builtins", "getattr")
        + _stack_global("builtins", "__import__")
        + _args(("os",))
        + b"R"
        + _text("system")
        + b"\x86R"
        + _args((_touch(marker),))
        + b"R."
    )
    _assert_refused(_write(tmp_path, payload), "builtins.getattr", marker)


@pytest.mark.parametrize(
    ("module", "name"),
    [
        ("sklearn", "os.system"),
        ("joblib.numpy_pickle", "os.system"),
        ("numpy", "ndarray.__init__.__globals__"),
        ("sklearn.ensemble._iforest", "IsolationForest.__init__.__globals__"),
    ],
)
def test_dotted_names_inside_trusted_modules_are_refused(
    tmp_path: Path, marker: Path, module: str, name: str
) -> None:
    """pickle walks dotted names; `sklearn.os.system` really is os.system."""
    _assert_refused(_write(tmp_path, _call(module, name, _touch(marker))), f"{module}.{name}", marker)


def test_untrusted_module_is_refused_before_it_is_imported(
    tmp_path: Path, marker: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    module = f"evil_{uuid.uuid4().hex}"
    (tmp_path / f"{module}.py").write_text(f"open({str(marker)!r}, 'w').close()\nvalue = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    _assert_refused(_write(tmp_path, _call(module, "value")), f"{module}.value", marker)
    assert module not in sys.modules


@pytest.mark.parametrize(
    ("module", "name", "args"),
    [
        ("numpy", "save", lambda m, evil: (str(m) + ".npy", [1, 2])),
        ("numpy", "savetxt", lambda m, evil: (str(m), [1.0])),
        ("numpy", "load", lambda m, evil: (str(evil), None, True)),
        ("numpy", "fromfile", lambda m, evil: (str(evil),)),
        ("numpy.ctypeslib", "load_library", lambda m, evil: ("libc", "/lib")),
        ("joblib", "load", lambda m, evil: (str(evil),)),
        ("joblib", "dump", lambda m, evil: ([1], str(m))),
        ("joblib.numpy_pickle", "load", lambda m, evil: (str(evil),)),
        ("sklearn.datasets", "dump_svmlight_file", lambda m, evil: ([[1.0]], [1], str(m))),
        ("scipy.io", "savemat", lambda m, evil: (str(m), {})),
    ],
)
def test_dangerous_functions_of_allowed_packages_are_refused(
    tmp_path: Path, marker: Path, module: str, name: str, args: Callable[[Path, Path], tuple[Any, ...]]
) -> None:
    # A file whose unrestricted loading would run `touch marker`: what numpy.load/joblib.load
    # would be pointed at.
    evil = tmp_path / "evil.npy"
    np.save(evil, np.array([_Call(os.system, _touch(marker))], dtype=object), allow_pickle=True)
    payload = _call(module, name, *args(marker, evil))
    _assert_refused(_write(tmp_path, payload), f"{module}.{name}", marker)
    assert not Path(str(marker) + ".npy").exists()


@pytest.mark.parametrize("name", ["attrgetter", "methodcaller"])
def test_operator_helpers_are_refused(tmp_path: Path, marker: Path, name: str) -> None:
    """attrgetter("system")(os)(cmd) and methodcaller("system", cmd)(os)."""
    helper_args: tuple[Any, ...] = ("system",) if name == "attrgetter" else ("system", _touch(marker))
    payload = (
        b"\x80\x04"
        + _stack_global("operator", name)
        + _args(helper_args)
        + b"R"
        + _stack_global("builtins", "__import__")
        + _args(("os",))
        + b"R\x85R"
        + (_args((_touch(marker),)) + b"R" if name == "attrgetter" else b"")
        + b"."
    )
    _assert_refused(_write(tmp_path, payload), f"operator.{name}", marker)


def test_copyreg_reconstructor_with_a_process_payload_is_refused(tmp_path: Path, marker: Path) -> None:
    """_reconstructor(Popen, Popen, argv) runs Popen.__new__ and Popen.__init__(argv)."""
    payload = (
        b"\x80\x04"
        + _stack_global("copyreg", "_reconstructor")
        + b"("
        + _stack_global("subprocess", "Popen")
        + _stack_global("subprocess", "Popen")
        + _value(["sh", "-c", _touch(marker)])
        + b"tR."
    )
    path = _write(tmp_path, payload)
    _assert_refused(path, "copyreg._reconstructor", marker)
    # Trusting the helper for old protocols does not trust what it is handed.
    _assert_refused(path, "subprocess.Popen", marker, extra_trusted=[("copyreg", "_reconstructor")])


@pytest.mark.parametrize("compress", [0, 3])
@pytest.mark.parametrize("inside_model", [False, True])
def test_nested_object_array_stream_is_restricted(
    tmp_path: Path, marker: Path, compress: int, inside_model: bool
) -> None:
    """joblib pickles object arrays as a nested stream: it goes through the same resolver."""
    hostile = np.array([1, _Call(os.system, _touch(marker))], dtype=object)
    obj: Any = hostile
    if inside_model:
        obj = IsolationForest(n_estimators=3, random_state=0).fit(_data()[0])
        obj.audit_ = hostile
    path = tmp_path / "model.joblib"
    joblib.dump(obj, path, compress=compress)
    _assert_refused(path, "posix.system", marker)


def test_nested_stream_cannot_rewrite_a_trusted_class(tmp_path: Path) -> None:
    """`numpy.logical_or(cls, cls)` hands back the class itself; a BUILD on it would run setattr."""

    class Rewrite:
        def __reduce__(self) -> tuple[Any, ...]:
            return np.logical_or, (IsolationForest, IsolationForest), (None, {"predict": 0})

    original = IsolationForest.predict
    path = tmp_path / "model.joblib"
    joblib.dump(np.array([Rewrite()], dtype=object), path)
    try:
        _assert_refused(path, "sklearn.ensemble._iforest.IsolationForest")
        assert IsolationForest.predict is original
    finally:
        IsolationForest.predict = original  # type: ignore[method-assign]


def test_build_on_a_trusted_class_is_refused(tmp_path: Path) -> None:
    original = IsolationForest.decision_function
    state = _value({"decision_function": 0})
    payload = (
        b"\x80\x04" + _stack_global("sklearn.ensemble._iforest", "IsolationForest") + b"N" + state + b"\x86b."
    )
    try:
        _assert_refused(_write(tmp_path, payload), "sklearn.ensemble._iforest.IsolationForest")
        assert IsolationForest.decision_function is original
    finally:
        IsolationForest.decision_function = original  # type: ignore[method-assign]


def test_build_on_a_trusted_function_is_refused(tmp_path: Path) -> None:
    """A slot state would set `__defaults__` of a function every later load calls."""
    from numpy.random import _pickle as numpy_random_pickle

    ctor = vars(numpy_random_pickle)["__bit_generator_ctor"]
    defaults = ctor.__defaults__
    state = _value({"__defaults__": ("PCG64",)})
    target = _stack_global("numpy.random._pickle", "__bit_generator_ctor")
    payload = b"\x80\x04" + target + b"N" + state + b"\x86b."
    try:
        _assert_refused(_write(tmp_path, payload), "numpy.random._pickle.__bit_generator_ctor")
        assert ctor.__defaults__ == defaults
    finally:
        ctor.__defaults__ = defaults


@pytest.mark.parametrize(
    ("module", "name", "opcodes"),
    [
        ("collections", "OrderedDict", b"(" + _text("k") + _text("v") + b"u."),  # SETITEMS
        ("collections", "OrderedDict", _text("k") + _text("v") + b"s."),  # SETITEM
        ("builtins", "list", b"(" + _text("x") + b"e."),  # APPENDS
        ("builtins", "list", _text("x") + b"a."),  # APPEND
        ("builtins", "set", b"(" + _text("x") + b"\x90."),  # ADDITEMS
    ],
)
def test_container_opcodes_on_a_class_are_refused(
    tmp_path: Path, module: str, name: str, opcodes: bytes
) -> None:
    payload = b"\x80\x04" + _stack_global(module, name) + opcodes
    _assert_refused(_write(tmp_path, payload), f"{module}.{name}")


def test_extension_codes_are_refused(tmp_path: Path) -> None:
    with pytest.raises(UntrustedModelError, match="extension code"):
        load_trusted(_write(tmp_path, b"\x80\x02\x82\x01."))


@pytest.mark.parametrize(
    "payload",
    [b"\x80\x02" + _text("abc") + b"Q.", b"Pabc\n.", b"\x80\x05\x97."],
    ids=["binpersid", "persid", "out-of-band-buffer"],
)
def test_persistent_ids_and_out_of_band_buffers_fail_to_load(tmp_path: Path, payload: bytes) -> None:
    with pytest.raises(ModelLoadFailedError):
        load_trusted(_write(tmp_path, payload))


def test_joblib_pre_0_10_format_and_its_wrapper_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadFailedError, match="before version 0.10"):
        load_trusted(_write(tmp_path, b"ZF0x00000010" + b"\x00" * 32))
    payload = _call("joblib.numpy_pickle_compat", "NDArrayWrapper", "arr.npy", np.ndarray)
    _assert_refused(_write(tmp_path, payload), "joblib.numpy_pickle_compat.NDArrayWrapper")


def test_a_hostile_name_is_shown_escaped(tmp_path: Path) -> None:
    name = "system\n[untrusted_model] fake line" + "x" * 500
    with pytest.raises(UntrustedModelError) as info:
        load_trusted(_write(tmp_path, _call("os", name)))
    message = str(info.value)
    assert "\n" not in message and len(message) < 900


# --- Other failures ------------------------------------------------------------------------


@pytest.mark.parametrize("compress", [0, 3])
def test_truncated_file_fails_to_load(tmp_path: Path, models: dict[str, Any], compress: int) -> None:
    path = tmp_path / "model.joblib"
    joblib.dump(models["iforest"], path, compress=compress)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelLoadFailedError):
        load_trusted(path)


@pytest.mark.parametrize(
    "content",
    [
        random.Random(0).randbytes(4096),
        b"",
        b"hello, I am not a pickle\n",
        b"\x80\x04N",
        b"\x78\x9c" + b"\x00" * 64,
    ],
    ids=["random", "empty", "text", "no-stop", "bad-zlib"],
)
def test_garbage_fails_to_load(tmp_path: Path, content: bytes) -> None:
    with pytest.raises(ModelLoadFailedError):
        load_trusted(_write(tmp_path, content))


def test_missing_file_fails_without_naming_the_path(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadFailedError) as info:
        load_trusted(tmp_path / "nowhere" / "model.joblib")
    assert str(tmp_path) not in str(info.value)
    with pytest.raises(ModelLoadFailedError):
        load_trusted(tmp_path)  # a directory


def test_a_trusted_constructor_that_fails_is_a_load_failure(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadFailedError, match="TypeError"):
        load_trusted(_write(tmp_path, _call("numpy", "dtype", "no-such-dtype")))


def test_a_huge_allocation_is_a_load_failure(tmp_path: Path) -> None:
    payload = (
        b"\x80\x04"
        + _stack_global("numpy._core.multiarray", "_reconstruct")
        + b"("
        + _stack_global("numpy", "ndarray")
        + _args((2**62,))
        + _text("b")
        + b"tR."
    )
    with pytest.raises(ModelLoadFailedError):
        load_trusted(_write(tmp_path, payload))


def test_codecs_encode_is_only_pickles_latin1(tmp_path: Path) -> None:
    assert load_trusted(_write(tmp_path, _call("_codecs", "encode", "\xe9t\xe9", "latin1"))) == b"\xe9t\xe9"
    with pytest.raises(ModelLoadFailedError):
        load_trusted(_write(tmp_path, _call("_codecs", "encode", "x", "rot13")))


# --- Configuration -------------------------------------------------------------------------


def test_extra_trusted_lets_a_configured_class_through(tmp_path: Path) -> None:
    counter_path = _write(tmp_path, pickle.dumps(collections.Counter(a=2, b=1), protocol=4), "counter.pkl")
    _assert_refused(counter_path, "collections.Counter")
    loaded_counter = load_trusted(counter_path, extra_trusted=[("collections", "Counter")])
    assert loaded_counter == collections.Counter(a=2, b=1)

    harmless_path = _write(tmp_path, pickle.dumps(_Harmless(3), protocol=5), "harmless.pkl")
    pair = (_Harmless.__module__, _Harmless.__qualname__)
    _assert_refused(harmless_path, f"{pair[0]}.{pair[1]}")
    loaded = load_trusted(harmless_path, extra_trusted=[pair])
    assert type(loaded) is _Harmless and loaded.value == 3


def test_extra_trusted_must_be_pairs(tmp_path: Path, models: dict[str, Any]) -> None:
    path = tmp_path / "model.joblib"
    joblib.dump(models["iforest"], path)
    with pytest.raises(ModelLoadFailedError, match="not a \\(module, name\\) pair"):
        load_trusted(path, extra_trusted=["collections:Counter"])  # type: ignore[list-item]


def test_check_trusted_matches_exact_pairs() -> None:
    check_trusted("sklearn.ensemble._iforest", "IsolationForest")
    check_trusted("collections", "Counter", extra_trusted=[("collections", "Counter")])
    refused = [("sklearn", "os.system"), ("sklearn.ensemble", "IsolationForest"), ("numpy", "load")]
    for module, name in refused:
        with pytest.raises(UntrustedModelError, match=f"`{module}.{name}`".replace(".", "\\.")):
            check_trusted(module, name)


# --- The allowlist itself ------------------------------------------------------------------


@pytest.mark.parametrize(
    "pair",
    [
        ("sklearn.ensemble._iforest", "IsolationForest"),
        ("sklearn.pipeline", "Pipeline"),
        ("sklearn.preprocessing._data", "StandardScaler"),
        ("sklearn.svm._classes", "OneClassSVM"),
        ("sklearn.neighbors._lof", "LocalOutlierFactor"),
        ("sklearn.tree._classes", "ExtraTreeRegressor"),
        ("sklearn.tree._tree", "Tree"),
        ("sklearn.neighbors._kd_tree", "KDTree"),
        ("sklearn.neighbors._ball_tree", "BallTree"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "scalar"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy", "log1p"),
        ("numpy.random._pickle", "__randomstate_ctor"),
        ("joblib.numpy_pickle", "NumpyArrayWrapper"),
        ("scipy.sparse._csr", "csr_matrix"),
        ("builtins", "slice"),
        ("collections", "OrderedDict"),
    ],
)
def test_allowlist_holds_what_model_pickles_need(pair: tuple[str, str]) -> None:
    assert pair in TRUSTED_GLOBALS


@pytest.mark.parametrize(
    "pair",
    [
        *(("builtins", n) for n in ("eval", "exec", "compile", "open", "getattr", "setattr", "__import__",
                                    "globals", "locals", "vars", "type", "input", "breakpoint", "bytes",
                                    "bytearray", "memoryview")),
        *(("operator", n) for n in ("attrgetter", "methodcaller", "itemgetter", "getitem")),
        ("copyreg", "_reconstructor"),
        ("copyreg", "__newobj__"),
        ("functools", "partial"),
        ("functools", "reduce"),
        ("os", "system"),
        ("posix", "system"),
        ("subprocess", "Popen"),
        ("numpy", "load"),
        ("numpy", "save"),
        ("numpy", "fromfile"),
        ("numpy", "loadtxt"),
        ("numpy", "memmap"),
        ("numpy", "void"),
        ("numpy.ctypeslib", "load_library"),
        ("numpy._core.numeric", "_ufunc_reconstruct"),
        ("joblib", "load"),
        ("joblib.numpy_pickle", "load"),
        ("joblib.numpy_pickle_compat", "NDArrayWrapper"),
        ("joblib.numpy_pickle_compat", "ZNDArrayWrapper"),
        ("sklearn.feature_extraction.text", "CountVectorizer"),
        ("sklearn.feature_extraction.text", "TfidfVectorizer"),
        ("sklearn.datasets", "load_svmlight_file"),
        ("sklearn", "os.system"),
    ],
)
def test_allowlist_leaves_out_dangerous_names(pair: tuple[str, str]) -> None:
    assert pair not in TRUSTED_GLOBALS


@pytest.mark.filterwarnings("ignore:numpy.core:DeprecationWarning")
def test_allowlist_is_exact_pairs_of_classes_and_known_helpers() -> None:
    """No dotted names, no modules; the only functions are reconstruction helpers."""
    import importlib

    helpers = {
        ("_codecs", "encode"),
        *((f"numpy.{core}.multiarray", n) for core in ("_core", "core") for n in ("_reconstruct", "scalar")),
        *((f"numpy.{core}.numeric", "_frombuffer") for core in ("_core", "core")),
        *(
            ("numpy.random._pickle", n)
            for n in ("__randomstate_ctor", "__generator_ctor", "__bit_generator_ctor")
        ),
    }
    assert isinstance(TRUSTED_GLOBALS, frozenset)
    assert len(TRUSTED_GLOBALS) > 300
    for module, name in TRUSTED_GLOBALS:
        assert isinstance(module, str) and isinstance(name, str) and "." not in name
        obj = getattr(importlib.import_module(module), name)
        if isinstance(obj, type) or isinstance(obj, np.ufunc):
            continue
        known = (module, name) in helpers or name == "newObj" or name.startswith("__pyx_unpickle_")
        assert known, (module, name)


# --- The memory budget ---------------------------------------------------------------------
#
# Bombs are built the way an attacker would write them, without the test allocating what they
# claim: a 1 GiB run of zeros is one compressed 1 MiB block repeated. Peaks are measured with
# tracemalloc, which sees numpy's array buffers too.

MIB = 1024 * 1024


def _adler32_zeros(value: int, n: int) -> int:
    """adler-32 continued over n zero bytes: `a` stays, `b` grows by n * a."""
    a, b = value & 0xFFFF, value >> 16
    return (((b + n * a) % 65521) << 16) | a


def _zlib_file(path: Path, *parts: bytes | int) -> Path:
    """A joblib `compress=` file (a zlib stream) of `parts`: bytes as given, an int n as n zeros.

    A zero run is one compressed 1 MiB block written n / 1 MiB times: a full flush makes each
    block stand alone, so 1 GiB of zeros is a 4.5 MB file that costs one block to build.
    """
    compressor = zlib.compressobj(1, zlib.DEFLATED, -15)  # raw deflate: header and trailer by hand
    out, adler, block = [b"\x78\x01"], 1, b""
    for part in parts:
        if isinstance(part, bytes):
            out.append(compressor.compress(part) + compressor.flush(zlib.Z_FULL_FLUSH))
            adler = zlib.adler32(part, adler)
        else:
            assert part % MIB == 0
            block = block or compressor.compress(bytes(MIB)) + compressor.flush(zlib.Z_FULL_FLUSH)
            out.append(block * (part // MIB))
            adler = _adler32_zeros(adler, part)
    out.append(compressor.flush() + struct.pack(">I", adler))
    path.write_bytes(b"".join(out))
    return path


def _wrapper_stream(n: int) -> tuple[bytes, bytes]:
    """joblib's layout for n float64 values: the pickle through the wrapper's BUILD, and after.

    joblib writes the array's bytes right after the BUILD that makes its `NumpyArrayWrapper`
    (here without alignment padding, as joblib < 1.2 wrote it).
    """
    wrapper = NumpyArrayWrapper(
        np.ndarray, (n,), "C", np.dtype("float64"), allow_mmap=False, numpy_array_alignment_bytes=None
    )
    stream = pickle.dumps(wrapper, protocol=2)
    assert stream.endswith(b"b.")  # BUILD, STOP
    return stream[:-1], stream[-1:]


def _inline_stream(n: int) -> tuple[bytes, bytes]:
    """`pickle.dumps(np.zeros(n), protocol=3)` without the data: the opcodes before and after it.

    numpy pickles an array as `_reconstruct` and a `__setstate__` whose data is one BINBYTES.
    """
    small = pickle.dumps(np.zeros(32), protocol=3)  # 256 bytes: BINBYTES (SHORT_BINBYTES below)
    shape, data = b"K\x20\x85", b"B" + struct.pack("<I", 256) + bytes(256)
    assert small.count(shape) == 1 and small.count(data) == 1
    head, tail = small.replace(shape, b"J" + struct.pack("<i", n) + b"\x85").split(data)
    return head + b"B" + struct.pack("<I", 8 * n), tail


def _over_budget(budget: int) -> str:
    return (
        f"model.joblib would unpack to more than {budget // MIB} MiB (the limit, "
        "MODEL_MCP_MAX_UNPACKED_BYTES), so it was not loaded. If the model is genuine and this "
        "large, an operator can raise MODEL_MCP_MAX_UNPACKED_BYTES."
    )


@pytest.fixture(scope="module")
def warm_loader(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Build the allowlist and the unpickler first, so peaks measure the load alone."""
    load_trusted(_write(tmp_path_factory.mktemp("warm"), pickle.dumps([1.5], protocol=4)))


def _peak_of_refusal(path: Path, budget: int, refused_for: str | None = None) -> int:
    """Load under `budget`, expect the budget's refusal (or one whose sentence has `refused_for`),
    and return the traced peak in bytes."""
    tracemalloc.start()
    try:
        with pytest.raises(ModelLoadFailedError) as info:
            load_trusted(path, max_bytes=budget)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert info.value.code == "model_load_failed"
    if refused_for is None:
        assert str(info.value) == _over_budget(budget)
    else:
        assert refused_for in str(info.value)
    return peak


def test_bomb_builders_write_files_that_load(tmp_path: Path) -> None:
    """The builders below are honest: at a small size their files load to the zeros they claim."""
    n = 2**18  # 2 MiB: two repeated blocks
    head, tail = _wrapper_stream(n)
    wrapped = load_trusted(_zlib_file(tmp_path / "wrapped.joblib", head, 8 * n, tail))
    head, tail = _inline_stream(n)
    inline = load_trusted(_zlib_file(tmp_path / "inline.joblib", head, 8 * n, tail))
    for array in (wrapped, inline):
        assert type(array) is np.ndarray and array.dtype == np.float64
        np.testing.assert_array_equal(array, np.zeros(n))


def test_a_compressed_array_bomb_is_refused_before_it_is_allocated(tmp_path: Path, warm_loader: None) -> None:
    """A 4.5 MB model.joblib whose wrapper declares 1 GiB: refused at the header (it used to load)."""
    n = 2**27
    head, tail = _wrapper_stream(n)
    path = _zlib_file(tmp_path / "model.joblib", head, 8 * n, tail)
    assert path.stat().st_size < 5 * MIB
    budget = 64 * MIB
    peak = _peak_of_refusal(path, budget)
    assert peak < 2 * budget
    assert peak < budget // 4  # refused at the declared size, before numpy allocates anything


@pytest.mark.parametrize("compressed", [False, True])
def test_an_array_pickled_inline_is_bounded(tmp_path: Path, warm_loader: None, compressed: bool) -> None:
    """A plain pickle of an ndarray: its data is read as one BINBYTES, cut at the budget."""
    n = 2**27 if compressed else 2**20  # 1 GiB compressed; 8 MiB as a plain file
    budget = 64 * MIB if compressed else 4 * MIB
    head, tail = _inline_stream(n)
    if compressed:
        path = _zlib_file(tmp_path / "model.joblib", head, 8 * n, tail)
    else:
        path = _write(tmp_path, head + bytes(8 * n) + tail)
    # 1 GiB in one string is refused when announced, before the budget is reached.
    refused_for = "announces a single object" if compressed else None
    assert _peak_of_refusal(path, budget, refused_for) < 2 * budget


def test_a_length_announced_in_the_stream_is_not_read_past_the_budget(
    tmp_path: Path, warm_loader: None
) -> None:
    """BINBYTES8 announcing 1 TiB over 256 MiB of compressed zeros: read up to the budget only.

    (The budget is not tiny: joblib's zlib reader holds up to 8 MiB it has inflated ahead.)
    """
    path = _zlib_file(tmp_path / "model.joblib", b"\x80\x04\x8e" + struct.pack("<Q", 2**40), 256 * MIB)
    budget = 32 * MIB
    assert _peak_of_refusal(path, budget, "announces a single object") < 2 * budget


@pytest.mark.parametrize("compress", [0, 3])
def test_a_real_model_loads_above_its_size_and_is_refused_below(
    tmp_path: Path, warm_loader: None, compress: int
) -> None:
    """A StandardScaler over 2**17 features holds three 1 MiB arrays (mean_, var_, scale_)."""
    rows = np.random.RandomState(0).normal(size=(4, 2**17))
    scaler = StandardScaler().fit(rows)
    path = tmp_path / "model.joblib"
    joblib.dump(scaler, path, compress=compress)
    loaded = load_trusted(path, max_bytes=16 * MIB)
    np.testing.assert_array_equal(loaded.transform(rows), scaler.transform(rows))
    _peak_of_refusal(path, 2 * MIB)


def test_fixture_models_load_under_a_budget(
    tmp_path: Path, warm_loader: None, models: dict[str, Any], probe: np.ndarray
) -> None:
    for kind, model in models.items():
        path = tmp_path / f"{kind}.joblib"
        joblib.dump(model, path, compress=3)
        _assert_same_predictions(load_trusted(path, max_bytes=16 * MIB), model, probe)


def test_object_arrays_in_joblib_nested_streams_share_the_budget(tmp_path: Path, warm_loader: None) -> None:
    values = np.array([f"category-{i}" for i in range(100_000)], dtype=object)
    path = tmp_path / "model.joblib"
    joblib.dump({"values": values}, path, compress=3)
    assert load_trusted(path, max_bytes=64 * MIB)["values"].tolist() == values.tolist()
    assert _peak_of_refusal(path, 2 * MIB) < 4 * MIB


def _ints(count: int) -> bytes:
    return b"".join(b"J" + struct.pack("<i", i) for i in range(count))


_OPCODE_BOMBS = {
    # A one-byte opcode that makes a 216-byte set: 224 times its stream size when unchecked.
    "empty_set": b"\x8f" * 100_000,
    "empty_list": b"]" * 300_000,
    "empty_dict": b"}" * 300_000,
    "mark": b"(" * 300_000,
    "memoized_lists": b"]\x94" * 300_000,
    "short_strings": b"\x8c\x02ab" * 300_000,
    "dict_items": b"}(" + b"".join(b"J" + struct.pack("<i", i) + b"N" for i in range(200_000)) + b"u",
    "set_items": b"\x8f(" + _ints(200_000) + b"\x90",
}


@pytest.mark.parametrize("kind", sorted(_OPCODE_BOMBS))
def test_a_stream_of_small_objects_stays_within_twice_the_budget(
    tmp_path: Path, warm_loader: None, kind: str
) -> None:
    path = _write(tmp_path, b"\x80\x04" + _OPCODE_BOMBS[kind] + b".")
    budget = 4 * MIB
    assert _peak_of_refusal(path, budget) < 2 * budget


def test_the_set_bomb_does_amplify_without_a_budget(tmp_path: Path, warm_loader: None) -> None:
    """The measure above can fail: unbounded, the 100 KB set stream holds over 20 MB."""
    path = _write(tmp_path, b"\x80\x04" + _OPCODE_BOMBS["empty_set"] + b".")
    tracemalloc.start()
    try:
        assert load_trusted(path) == set()  # STOP returns the top of a stack of 100,000 sets
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak > 20 * MIB


def _arrays_args(*arrays: np.ndarray) -> bytes:
    return pickle.dumps(arrays, protocol=4)[2:-1]


_CALL_BOMBS = {
    "reconstruct": _stack_global("numpy._core.multiarray", "_reconstruct")
    + b"("
    + _stack_global("numpy", "ndarray")
    + _args((2**27,))
    + _text("b")
    + b"tR",
    "ndarray": _stack_global("numpy", "ndarray") + _args(((2**27,),)) + b"R",
    # (4096, 1) + (1, 4096) broadcasts to 128 MiB.
    "ufunc_broadcast": _stack_global("numpy", "add") + _arrays_args(np.zeros((4096, 1)), np.zeros((1, 4096))) + b"R",
    "list_of_array": _stack_global("builtins", "list") + _arrays_args(np.zeros(2**17, dtype=np.uint8)) + b"R",
    "lil_matrix_shape": _stack_global("scipy.sparse._lil", "lil_matrix") + _args(((2**28, 1),)) + b"R",
}


@pytest.mark.parametrize("kind", sorted(_CALL_BOMBS))
def test_calls_that_allocate_by_shape_are_charged_before_they_run(
    tmp_path: Path, warm_loader: None, kind: str
) -> None:
    path = _write(tmp_path, b"\x80\x04" + _CALL_BOMBS[kind] + b".")
    budget = 8 * MIB
    assert _peak_of_refusal(path, budget) < budget


def test_an_object_array_with_too_few_items_is_refused_not_crashed(tmp_path: Path) -> None:
    """numpy's `__setstate__` reads past a short list and crashes the process; refuse it first."""
    real = pickle.dumps(np.array([1, "a", None], dtype=object), protocol=3)
    start = real.index(b"\x89]") + 1  # is_fortran False, then the list of the three items
    end = real.index(b"Ne", start) + 2  # ... None, APPENDS
    short = real[:start] + b"]K\x01a" + real[end:]  # a list of one item
    np.testing.assert_array_equal(load_trusted(_write(tmp_path, real)), np.array([1, "a", None], dtype=object))
    with pytest.raises(ModelLoadFailedError, match="wrong number of items"):
        load_trusted(_write(tmp_path, short))


@pytest.mark.parametrize("max_bytes", [-1, True, 1.5, "1024"])
def test_max_bytes_must_be_a_byte_count(tmp_path: Path, max_bytes: Any) -> None:
    with pytest.raises(ModelLoadFailedError, match="MODEL_MCP_MAX_UNPACKED_BYTES"):
        load_trusted(_write(tmp_path, pickle.dumps(1)), max_bytes=max_bytes)


# --- The per-container item cap --------------------------------------------------------------

def test_a_joblib_holding_a_list_past_the_item_cap_is_refused_before_it_is_built(
    tmp_path: Path, warm_loader: None, models: dict[str, Any]
) -> None:
    """A real model whose `offsets_` is a 3,000,000-item list, written as pickle writes lists (APPENDS in
    batches of 1,000) in a 160 KB compressed joblib: refused once the list would pass
    MAX_CONTAINER_ITEMS, before its 24 MB of pointers are held."""
    import copy

    hostile = copy.copy(models["iforest"])
    hostile.offsets_ = [None] * 7
    plain = tmp_path / "plain.joblib"
    joblib.dump(hostile, plain)
    stream = plain.read_bytes()
    assert stream.count(b"(NNNNNNNe") == 1
    stream = stream.replace(b"(NNNNNNNe", (b"(" + b"N" * 1000 + b"e") * 3000)
    path = _write(tmp_path, zlib.compress(stream, 9))  # joblib's `compress=` format: a zlib stream
    assert path.stat().st_size < 200_000
    peak = _peak_of_refusal(path, 2 * 1024 * MIB, refused_for=f"a list of more than {MAX_CONTAINER_ITEMS} items")
    print(f"item cap: refused with a traced peak of {peak / MIB:.1f} MiB")
    assert peak < 16 * MIB
    # The same file with a list of the size real state has loads.
    small = stream.replace((b"(" + b"N" * 1000 + b"e") * 3000, (b"(" + b"N" * 1000 + b"e") * 2)
    assert len(load_trusted(_write(tmp_path, zlib.compress(small), "small.joblib")).offsets_) == 2000


_CAP = 10_000  # the same checks as at the default cap, at a size quick to build
_CONTAINER_BOMBS = {
    # Every one built by a single opcode from the items since a MARK, or by a call from an array.
    "tuple": (b"(" + b"N" * (_CAP + 1) + b"t", "a tuple"),
    "list": (b"(" + b"N" * (_CAP + 1) + b"l", "a list"),
    "frozenset": (b"(" + _ints(_CAP + 1) + b"\x91", "a frozenset"),
    "dict": (b"(" + b"".join(b"J" + struct.pack("<i", i) + b"N" for i in range(_CAP + 1)) + b"d", "a dict"),
    "set_items": (b"\x8f(" + _ints(_CAP + 1) + b"\x90", "a set"),
    "setitems_batches": (b"}" + b"".join(b"(" + b"".join(b"J" + struct.pack("<i", i) + b"N"
                                                         for i in range(k, k + 5000)) + b"u" for k in (0, 5000, 10000)),
                         "a dict"),
    "appends_batches": (b"]" + (b"(" + b"N" * 4000 + b"e") * 3, "a list"),
    "append_one_by_one": (b"]" + b"Na" * (_CAP + 1), "a list"),
    "list_of_array": (_stack_global("builtins", "list") + _arrays_args(np.zeros(_CAP + 1, dtype=np.uint8)) + b"R",
                      "a list"),
}


@pytest.mark.parametrize("kind", sorted(_CONTAINER_BOMBS))
def test_every_way_to_build_a_container_is_capped(tmp_path: Path, warm_loader: None, kind: str) -> None:
    stream, shown = _CONTAINER_BOMBS[kind]
    path = _write(tmp_path, b"\x80\x04" + stream + b".")
    with pytest.raises(ModelLoadFailedError, match=f"builds {shown} of more than {_CAP} items"):
        load_trusted(path, max_items=_CAP)
    load_trusted(path, max_items=3 * _CAP)  # the same stream under a higher cap loads: the cap refused it
