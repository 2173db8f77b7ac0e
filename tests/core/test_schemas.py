"""metadata.json and deployment_manifest.json: what is accepted, and errors that name the key."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from model_mcp.core.errors import InvalidManifestError, InvalidMetadataError
from model_mcp.core.schemas import parse_manifest, parse_metadata, parse_timestamp
from model_mcp.samples import package_files

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
HEX = "ab" * 32
QUANTILES = [-4.2, -1.3, -0.8, -0.5, -0.2, 0.1, 0.3, 0.6, 0.9, 1.4, 4.5]


def metadata(**changes: Any) -> bytes:
    """A valid minimal metadata.json; a value of None removes the key."""
    data: dict[str, Any] = {
        "model_name": "network-anomaly",
        "created_at": "2026-11-20T14:30:22Z",
        "model_type": "IsolationForest",
        "feature_names": ["bytes_in", "bytes_out"],
    }
    for key, value in changes.items():
        if value is None:
            data.pop(key, None)
        else:
            data[key] = value
    return json.dumps(data).encode()


def metadata_error(raw: bytes) -> str:
    with pytest.raises(InvalidMetadataError) as caught:
        parse_metadata(raw)
    assert caught.value.code == "invalid_metadata"
    return str(caught.value)


def manifest_error(raw: bytes) -> str:
    with pytest.raises(InvalidManifestError) as caught:
        parse_manifest(raw)
    assert caught.value.code == "invalid_manifest"
    return str(caught.value)


# --------------------------------------------------------------------------- metadata: accepted


def test_the_fixture_example_and_a_sample_package_parse() -> None:
    example = parse_metadata((FIXTURES / "metadata.example.json").read_bytes())
    assert example.model_name
    sample = parse_metadata(package_files()["metadata.json"])
    assert sample.version == "20261120_143022"
    assert sample.feature_names[:2] == ["bytes_in", "bytes_out"]
    assert sample.feature_profile is not None
    assert len(sample.feature_profile["bytes_in"].quantiles or []) == 11


def test_minimal_metadata_parses_with_optional_parts_absent() -> None:
    parsed = parse_metadata(metadata())
    assert parsed.model_name == "network-anomaly"
    assert parsed.model_type == "IsolationForest"
    assert parsed.feature_names == ["bytes_in", "bytes_out"]
    assert parsed.version is None
    assert parsed.feature_profile is None
    assert parsed.evaluation_metrics is None


def test_unknown_keys_are_kept() -> None:
    parsed = parse_metadata(metadata(owner="team-a", extra_block={"k": [1, 2]}))
    assert parsed.model_extra == {"owner": "team-a", "extra_block": {"k": [1, 2]}}
    assert parsed.model_dump()["owner"] == "team-a"


def test_unknown_keys_inside_a_feature_profile_are_kept() -> None:
    parsed = parse_metadata(metadata(feature_profile={"bytes_in": {"mean": 0.1, "skew": 0.3}}))
    assert parsed.feature_profile is not None
    assert parsed.feature_profile["bytes_in"].model_extra == {"skew": 0.3}


@pytest.mark.parametrize(("created_at", "utc"), [
    ("2026-11-20T14:30:22Z", "2026-11-20T14:30:22+00:00"),
    ("2026-11-20T15:30:22+01:00", "2026-11-20T14:30:22+00:00"),
    ("2026-11-20T14:30:22", "2026-11-20T14:30:22+00:00"),  # no zone: taken as UTC
    ("2026-11-20T14:30:22.123456z", "2026-11-20T14:30:22.123456+00:00"),
])
def test_created_at_is_read_as_utc(created_at: str, utc: str) -> None:
    assert parse_metadata(metadata(created_at=created_at)).created.isoformat() == utc
    assert parse_timestamp(created_at).isoformat() == utc


# --------------------------------------------------------------------------- metadata: refused


@pytest.mark.parametrize("key", ["model_name", "created_at", "model_type", "feature_names"])
def test_a_missing_required_key_is_named(key: str) -> None:
    assert f"`{key}` is required" in metadata_error(metadata(**{key: None}))


def test_every_missing_key_is_named_at_once() -> None:
    message = metadata_error(b"{}")
    for key in ("model_name", "created_at", "model_type", "feature_names"):
        assert f"`{key}` is required" in message


@pytest.mark.parametrize(("changes", "named"), [
    ({"model_name": 5}, "`model_name`: Input should be a valid string"),
    ({"model_type": ["IsolationForest"]}, "`model_type`: Input should be a valid string"),
    ({"created_at": 20261120}, "`created_at`: Input should be a valid string"),
    ({"feature_names": "bytes_in"}, "`feature_names`: Input should be a valid list"),
    ({"feature_names": ["bytes_in", 3]}, "`feature_names.1`: Input should be a valid string"),
    ({"version": 20261120}, "`version`: Input should be a valid string"),
    ({"evaluation_metrics": {"f1_score": "high"}}, "`evaluation_metrics.f1_score`: Input should be a number"),
    ({"evaluation_metrics": {"f1_score": True}}, "`evaluation_metrics.f1_score`: Input should be a number"),
    ({"framework": "scikit-learn"}, "`framework`: Input should be a valid dictionary"),
    ({"feature_profile": {"bytes_in": {"mean": "zero"}}}, "`feature_profile.bytes_in.mean`: Input should be a number"),
    ({"feature_profile": {"bytes_in": {"quantiles": [0] * 10 + ["1"]}}},
     "`feature_profile.bytes_in.quantiles.10`: Input should be a number"),
])
def test_a_wrong_type_names_the_key(changes: dict[str, Any], named: str) -> None:
    assert named in metadata_error(metadata(**changes))


def test_a_wrong_number_type_is_said_once_under_its_own_key() -> None:
    message = metadata_error(metadata(evaluation_metrics={"f1_score": "high"}))
    assert message == "metadata.json is not valid: `evaluation_metrics.f1_score`: Input should be a number."


def test_at_most_five_problems_are_listed() -> None:
    message = metadata_error(metadata(evaluation_metrics={f"m{i}": "x" for i in range(7)}))
    assert message == ("metadata.json is not valid: " + "; ".join(
        f"`evaluation_metrics.m{i}`: Input should be a number" for i in range(5)) + " (and 2 more).")


def test_empty_strings_and_lists_are_refused() -> None:
    assert "`model_name`" in metadata_error(metadata(model_name=""))
    assert "`feature_names`" in metadata_error(metadata(feature_names=[]))
    assert "`feature_names`: must not contain an empty name" in metadata_error(metadata(feature_names=["a", ""]))


def test_duplicate_feature_names_are_refused() -> None:
    message = metadata_error(metadata(feature_names=["bytes_in", "bytes_out", "bytes_in"]))
    assert message == "metadata.json is not valid: `feature_names`: names 'bytes_in' twice."


@pytest.mark.parametrize("created_at", ["yesterday", "2026-13-01T00:00:00Z", "2026-11-20T25:00:00", "",
                                        "0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"])
def test_a_bad_created_at_is_refused(created_at: str) -> None:
    message = metadata_error(metadata(created_at=created_at))
    assert "`created_at`: must be an ISO-8601 date and time, such as 2026-11-20T14:30:22Z" in message


@pytest.mark.parametrize("constant", [b"NaN", b"Infinity", b"-Infinity"])
def test_nan_and_infinity_constants_are_refused(constant: bytes) -> None:
    raw = metadata(evaluation_metrics={"f1_score": 0.5}).replace(b"0.5", constant)
    message = metadata_error(raw)
    assert message.startswith("metadata.json is not readable JSON:")
    assert f"{constant.decode()} is not a JSON number" in message


def test_a_number_that_overflows_to_infinity_is_refused() -> None:
    raw = metadata(evaluation_metrics={"f1_score": 0.5}).replace(b"0.5", b"1e400")
    message = metadata_error(raw)
    assert message.startswith("metadata.json is not readable JSON:")
    assert "1e400 is out of range" in message


@pytest.mark.parametrize(("raw", "said"), [
    (b"[1, 2]", "metadata.json must hold a JSON object, not list."),
    (b'"text"', "metadata.json must hold a JSON object, not str."),
    (b"null", "metadata.json must hold a JSON object, not NoneType."),
])
def test_json_that_is_not_an_object_is_refused(raw: bytes, said: str) -> None:
    assert metadata_error(raw) == said


@pytest.mark.parametrize("raw", [b"", b"{", b"\xff\xfe{}", b'{"a": 1,}'])
def test_unreadable_json_is_refused(raw: bytes) -> None:
    assert metadata_error(raw).startswith("metadata.json is not readable JSON:")


@pytest.mark.parametrize(("quantiles", "said"), [
    (QUANTILES[:10], "must hold 11 numbers (0%, 10%, ..., 100%), not 10"),
    (QUANTILES + [5.0], "must hold 11 numbers (0%, 10%, ..., 100%), not 12"),
    ([], "must hold 11 numbers (0%, 10%, ..., 100%), not 0"),
    (QUANTILES[:5] + [QUANTILES[3]] + QUANTILES[6:], "must be ascending"),
    (list(reversed(QUANTILES)), "must be ascending"),
])
def test_bad_quantiles_are_refused(quantiles: list[float], said: str) -> None:
    message = metadata_error(metadata(feature_profile={"bytes_in": {"quantiles": quantiles}}))
    assert f"`feature_profile.bytes_in.quantiles`: {said}" in message


def test_eleven_ascending_quantiles_with_ties_are_accepted() -> None:
    ties = [0.0, 0.0, 0.0, 1.0, 1.0, 2, 3, 4, 5, 6, 6]
    parsed = parse_metadata(metadata(feature_profile={"bytes_in": {"quantiles": ties}}))
    assert parsed.feature_profile is not None
    assert parsed.feature_profile["bytes_in"].quantiles == ties


# --------------------------------------------------------------------------- manifest


def manifest(**changes: Any) -> bytes:
    data: dict[str, Any] = {"model_version": "v1",
                            "files": {"model.joblib": {"sha256": HEX, "size": 10}}}
    for key, value in changes.items():
        if value is None:
            data.pop(key, None)
        else:
            data[key] = value
    return json.dumps(data).encode()


def test_the_fixture_manifest_and_a_sample_manifest_parse() -> None:
    parse_manifest((FIXTURES / "deployment_manifest.example.json").read_bytes())
    files = package_files()
    parsed = parse_manifest(files["deployment_manifest.json"])
    assert parsed.model_version == "20261120_143022"
    assert set(parsed.files) == set(files) - {"deployment_manifest.json"}
    assert parsed.files["model.joblib"].size == len(files["model.joblib"])


def test_a_bare_hex_string_is_accepted() -> None:
    parsed = parse_manifest(manifest(files={"metadata.json": HEX.upper(), "model.joblib": {"sha256": HEX}}))
    assert parsed.files["metadata.json"].sha256 == HEX  # lower-cased
    assert parsed.files["metadata.json"].size is None
    assert parsed.files["model.joblib"].sha256 == HEX


def test_model_version_and_resources_are_optional() -> None:
    parsed = parse_manifest(manifest(model_version=None))
    assert parsed.model_version is None
    assert parsed.resources is None
    parsed = parse_manifest(manifest(resources={"max_memory_mb": 512, "max_latency_ms": 50.5}))
    assert parsed.resources is not None
    assert (parsed.resources.max_memory_mb, parsed.resources.max_latency_ms) == (512, 50.5)


def test_a_manifest_without_files_is_refused() -> None:
    assert manifest_error(manifest(files=None)) == "deployment_manifest.json is not valid: `files` is required."


@pytest.mark.parametrize(("files", "key"), [
    ({"model.joblib": "not-hex"}, "`files.model.joblib.sha256`: must be 64 hexadecimal characters"),
    ({"model.joblib": "ab" * 31}, "`files.model.joblib.sha256`: must be 64 hexadecimal characters"),
    ({"metadata.json": {"sha256": "g" * 64}}, "`files.metadata.json.sha256`: must be 64 hexadecimal characters"),
    ({"metadata.json": {"sha256": HEX + "\n"}}, "`files.metadata.json.sha256`: must be 64 hexadecimal characters"),
    ({"model.joblib": {"sha256": HEX, "size": -1}}, "`files.model.joblib.size`"),
    ({"model.joblib": {"sha256": HEX, "size": "10"}}, "`files.model.joblib.size`"),
    ({"model.joblib": 12}, "`files.model.joblib`"),
])
def test_a_bad_file_entry_names_the_file(files: dict[str, Any], key: str) -> None:
    assert key in manifest_error(manifest(files=files))


@pytest.mark.parametrize(("changes", "key"), [
    ({"files": ["model.joblib"]}, "`files`: Input should be a valid dictionary"),
    ({"model_version": 1}, "`model_version`: Input should be a valid string"),
    ({"resources": {"max_memory_mb": 0}}, "`resources.max_memory_mb`: Input should be greater than 0"),
    ({"resources": {"max_latency_ms": "fast"}}, "`resources.max_latency_ms`: Input should be a number"),
])
def test_a_wrong_manifest_type_names_the_key(changes: dict[str, Any], key: str) -> None:
    assert key in manifest_error(manifest(**changes))


def test_an_unreadable_manifest_is_invalid_manifest() -> None:
    assert manifest_error(b"{nope").startswith("deployment_manifest.json is not readable JSON:")
    assert manifest_error(b"[]") == "deployment_manifest.json must hold a JSON object, not list."
