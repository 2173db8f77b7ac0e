"""Fuzzing the server through its MCP tools: mutated ZIPs, mutated package JSON, arbitrary predict rows.

One server and one in-memory client per module, held open across hypothesis examples through a
blocking portal (the tests themselves are plain functions, so hypothesis drives them directly).
The property for every call: the answer is a success with structured content, or a tool error
`[code] sentence` whose code the contract lists for that tool; never `[internal_error]`, never
an exception in the client. After every example the server still answers, the staging folder
is empty, and nothing exists beside the home in the fuzz folder, nor inside the home beyond the
store's own layout.
"""

from __future__ import annotations

import base64
import copy
import functools
import io
import json
import re
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from anyio.from_thread import BlockingPortal, start_blocking_portal
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from model_mcp import samples
from model_mcp.settings import Settings

CODE = re.compile(r"\[([a-z_]+)\] \S")
PREDICT_VERSION = "fuzz-predict-target"

IMPORT_CODES = frozenset({
    "not_a_zip", "unsafe_archive", "archive_too_large", "missing_required_files", "invalid_metadata",
    "invalid_manifest", "hash_mismatch", "invalid_version", "version_conflict", "untrusted_model",
    "model_load_failed", "storage_error",
})
# not_found: a version written `name@alias` naming no model or no alias of it (several models at once).
PREDICT_CODES = frozenset({"invalid_input", "version_mismatch", "storage_error", "not_found"})
# What the store may hold at its top level (docs/operations.md, "The store").
HOME_LAYOUT = frozenset({
    "registry.json", "registry.json.lock", "models", "reports", "staging", "history.jsonl", "backups", "scoring",
    "monitoring.db", "monitoring.db-wal", "monitoring.db-shm",
    "history-index.jsonl", "history.lock",
})

# derandomize: the same examples in every run, so CI cannot pass or fail by the draw (the coverage check
# below, at least three kinds of answers, depends on which mutations come up).
FUZZ = settings(
    max_examples=150, deadline=None, database=None, print_blob=True, derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


# --------------------------------------------------------------------------- the served client


@dataclass
class Served:
    portal: BlockingPortal
    client: Any
    root: Path
    home: Path

    def call(self, tool: str, **arguments: Any) -> tuple[str, Any]:
        """('ok', structured content) or (code, message); fails the test on anything else."""
        result = self.portal.call(self.client.call_tool, tool, arguments)
        text = " ".join(getattr(c, "text", "") for c in result.content)
        if not result.is_error:
            assert result.structured_content is not None, f"{tool} answered without structured content"
            return "ok", result.structured_content
        match = CODE.search(text)
        assert match, f"{tool} error is not '[code] sentence': {text[:300]!r}"
        assert match.group(1) != "internal_error", f"{tool} crashed: {text[:300]}"
        return match.group(1), text

    def check_store(self) -> None:
        """Still answering; nothing left in staging; nothing outside the home or the store's layout."""
        code, listing = self.call("list_models")
        assert code == "ok"
        assert sorted(p.name for p in self.root.iterdir()) == ["home"]
        assert {p.name for p in self.home.iterdir()} <= HOME_LAYOUT
        staging = self.home / "staging"
        assert not staging.exists() or list(staging.iterdir()) == []
        for entry in listing["models"]:
            folder = self.home / "models" / entry["version"]
            assert folder.is_dir() and folder.resolve().parent == (self.home / "models").resolve()


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    from mcp import Client

    from model_mcp.core.manager import ModelManager
    from model_mcp.server import build_server

    root = tmp_path_factory.mktemp("fuzz")
    home = root / "home"
    manager = ModelManager(Settings(home=home))
    manager.start()
    with start_blocking_portal(backend="asyncio") as portal:
        with portal.wrap_async_context_manager(Client(build_server(manager))) as client:
            yield Served(portal, client, root, home)


# --------------------------------------------------------------------------- package bytes


@functools.cache
def base_files() -> dict[str, bytes]:
    return samples.package_files()


def zip_bytes(files: dict[str, bytes], method: int = zipfile.ZIP_STORED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", method) as archive:
        for name in sorted(files):
            archive.writestr(name, files[name])
    return buffer.getvalue()


@functools.cache
def base_zip() -> bytes:
    """A small valid package (no optional files, deflated) as the seed for byte mutations."""
    return zip_bytes(samples.package_files(include_optional=False), zipfile.ZIP_DEFLATED)


@functools.cache
def zip_regions() -> dict[str, tuple[int, int]]:
    """Where the structure sits: the local headers, the central directory and its end record."""
    data = base_zip()
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        start_dir = archive.start_dir
        headers = [info.header_offset for info in archive.infolist()]
    return {
        "anywhere": (0, len(data)),
        "first-header": (0, 64),
        "some-header": (min(headers), max(headers) + 64),
        "central-directory": (start_dir, len(data)),
        "end-record": (len(data) - 22, len(data)),
    }


def as_upload(data: bytes) -> str:
    return base64.b64encode(data).decode()


# --------------------------------------------------------------------------- strategies

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.integers(min_value=2**63, max_value=2**70)
    | st.floats() | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=12,
)


@st.composite
def mutated_zips(draw: st.DrawFn) -> bytes:
    """The seed archive with 1 to 4 edits: flipped bits, overwritten fields, cuts and insertions."""
    data = bytearray(base_zip())
    for _ in range(draw(st.integers(1, 4))):
        low, high = zip_regions()[draw(st.sampled_from(sorted(zip_regions())))]
        high = min(high, len(data))
        if low >= high:
            continue
        at = draw(st.integers(low, high - 1))
        kind = draw(st.sampled_from(["flip", "overwrite", "cut-tail", "insert", "delete"]))
        if kind == "flip":
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif kind == "overwrite":
            value = draw(st.sampled_from([b"\x00", b"\xff", b"\xff\xff", b"\xff\xff\xff\xff", b"\x00\x00\x00\x80"])
                         | st.binary(min_size=1, max_size=4))
            data[at : at + len(value)] = value
        elif kind == "cut-tail":
            del data[at:]
        elif kind == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=16))
        else:
            del data[at : at + draw(st.integers(1, 64))]
    return bytes(data)


@st.composite
def mutated_documents(draw: st.DrawFn, original: dict[str, Any], keys: list[str]) -> bytes:
    """A JSON document derived from `original`: a key replaced, removed or added, or the whole thing."""
    doc: Any = copy.deepcopy(original)
    for _ in range(draw(st.integers(1, 3))):
        action = draw(st.sampled_from(["replace", "delete", "add", "nested", "whole"]))
        if not isinstance(doc, dict) or action == "whole":
            doc = draw(json_values)
        elif action == "replace":
            doc[draw(st.sampled_from(keys))] = draw(json_values)
        elif action == "delete":
            doc.pop(draw(st.sampled_from(keys)), None)
        elif action == "add":
            doc[draw(st.text(max_size=12))] = draw(json_values)
        else:
            key = draw(st.sampled_from(keys))
            if isinstance(doc.get(key), dict) and doc[key]:
                inner = doc[key]
                inner[draw(st.sampled_from(sorted(inner)) | st.text(max_size=12))] = draw(json_values)
    text = json.dumps(doc, allow_nan=True, ensure_ascii=draw(st.booleans()))
    encoding = draw(st.sampled_from(["utf-8", "utf-8", "utf-8-sig", "utf-16", "latin-1-cut"]))
    if encoding == "latin-1-cut":
        return text.encode("utf-8")[: draw(st.integers(0, len(text)))]
    return text.encode(encoding, "surrogatepass")


METADATA_KEYS = ["model_name", "created_at", "model_type", "feature_names", "version", "framework",
                 "training_info", "evaluation_metrics", "feature_profile"]
MANIFEST_KEYS = ["model_version", "files", "resources"]


@st.composite
def packages_with_mutated_json(draw: st.DrawFn) -> bytes:
    """A package whose metadata.json (manifest hashes recomputed) or deployment_manifest.json is fuzzed."""
    files = dict(base_files())
    if draw(st.booleans()):
        original = json.loads(files["metadata.json"])
        metadata = draw(mutated_documents(original, METADATA_KEYS))
        files = samples.package_files(extra_files={"metadata.json": metadata})
    else:
        original = json.loads(files["deployment_manifest.json"])
        names = sorted(original["files"])
        hostile_names = ["../registry.json", "/etc/passwd", "model.joblib/..", "", ".", "..", "a\\b", "x" * 300]
        if draw(st.booleans()):  # a file entry with a hostile name or a strange value
            original["files"][draw(st.sampled_from(hostile_names + names))] = draw(
                json_values | st.fixed_dictionaries({"sha256": st.text(max_size=70), "size": json_values})
            )
        files["deployment_manifest.json"] = draw(mutated_documents(original, MANIFEST_KEYS))
    return zip_bytes(files)


FEATURES = samples.feature_names_for(8)
numbers = st.floats(allow_nan=True, allow_infinity=True) | st.integers() | st.integers(min_value=2**1023)
cells = numbers | st.none() | st.booleans() | st.text(max_size=5) | st.lists(st.integers(), max_size=2)
list_rows = st.lists(cells, min_size=0, max_size=10) | st.lists(numbers, min_size=8, max_size=8)
dict_rows = (
    st.dictionaries(st.sampled_from(FEATURES) | st.text(max_size=8), cells, max_size=10)
    | st.fixed_dictionaries({name: numbers for name in FEATURES})
)
predict_rows = (
    st.lists(list_rows | dict_rows | json_values, min_size=0, max_size=6)
    | st.lists(st.lists(st.floats(-1e6, 1e6), min_size=8, max_size=8), min_size=1, max_size=20)
    | json_values
)


# --------------------------------------------------------------------------- the tests


def test_mutated_zips_answer_success_or_a_contract_error(served: Served) -> None:
    seen: dict[str, int] = {}

    @FUZZ
    @given(data=mutated_zips())
    def check(data: bytes) -> None:
        code, _ = served.call("import_zip", content_base64=as_upload(data), filename="fuzz.zip")
        assert code == "ok" or code in IMPORT_CODES, code
        seen[code] = seen.get(code, 0) + 1
        served.check_store()

    check()
    # The mutations reach past the first check: more than one kind of answer came back.
    assert len(seen) >= 3, seen


def test_mutated_package_json_answers_success_or_a_contract_error(served: Served) -> None:
    seen: dict[str, int] = {}

    @FUZZ
    @given(data=packages_with_mutated_json())
    def check(data: bytes) -> None:
        code, _ = served.call("import_zip", content_base64=as_upload(data))
        assert code == "ok" or code in IMPORT_CODES, code
        seen[code] = seen.get(code, 0) + 1
        served.check_store()

    check()
    assert {"invalid_metadata", "invalid_manifest"} <= set(seen), seen


# Finite float64 values beyond float32's range: scikit-learn casts them (to inf) and says so.
@pytest.mark.filterwarnings("ignore:overflow encountered in cast:RuntimeWarning")
def test_arbitrary_predict_rows_answer_success_or_a_contract_error(served: Served) -> None:
    # Its own version: the JSON fuzz may have imported other content under the sample's version.
    package = zip_bytes(samples.package_files(version=PREDICT_VERSION))
    code, imported = served.call("import_zip", content_base64=as_upload(package))
    assert code == "ok", imported
    code, deployed = served.call("deploy", version=PREDICT_VERSION)
    assert code == "ok", deployed
    seen: dict[str, int] = {}

    @settings(FUZZ, max_examples=200)
    @given(rows=predict_rows, version=st.none() | st.just(PREDICT_VERSION) | st.text(max_size=10))
    def check(rows: Any, version: str | None) -> None:
        arguments: dict[str, Any] = {"rows": rows}
        if version is not None:
            arguments["version"] = version
        code, answer = served.call("predict", **arguments)
        assert code == "ok" or code in PREDICT_CODES, code
        if code == "ok":
            assert answer["model_version"] == PREDICT_VERSION
            assert answer["n_rows"] == len(rows) == len(answer["labels"])
        seen[code] = seen.get(code, 0) + 1

    check()
    served.check_store()
    assert {"ok", "invalid_input"} <= set(seen), seen
