"""Large messages' matrices of numbers parsed straight into arrays: the same values json.loads gives,
and every text that is not exactly a JSON matrix of numbers left to json.loads."""

from __future__ import annotations

import json

import numpy as np
import pytest

from model_mcp import row_matrices

PAD = " " * row_matrices.MIN_MATRIX_BYTES  # JSON whitespace, to make a matrix count as large


def parse(matrix: str) -> tuple[object, object]:
    """(json.loads's value of `a`, row_matrices.loads's), or "error" for either that raises."""
    line = ('{"a": [' + PAD + matrix[1:] + ', "b": "[[1]]"}').encode()
    results = []
    for loads in (json.loads, row_matrices.loads):
        try:
            results.append(loads(bytearray(line))["a"])
        except ValueError:
            results.append("error")
    return results[0], results[1]


@pytest.mark.parametrize("matrix", [
    "[[1,2],[3,4]]", "[[1, 2], [3, 4]]", "[ [ -1.5e-3 , 2E+5 ] ,\n [0, 0.25] ]", "[[1e05]]", "[[0,-0],[10,100]]",
    "[[1e400]]", "[[5000000000000000000000]]", "[[0.1e-5, -0e0]]", "[[0.30000000000000004, 1.7976931348623157e308]]",
])
def test_a_matrix_of_numbers_becomes_the_array_json_gives(matrix: str) -> None:
    expected, got = parse(matrix)
    assert isinstance(got, np.ndarray) and got.dtype == np.float64
    np.testing.assert_array_equal(got, np.array(expected, dtype=np.float64))


@pytest.mark.parametrize("matrix", [
    "[[1,2],[3,4,]]", "[[1,2],[3]]", "[[1,2],3]", "[[1],[2],4]", "[[+1]]", "[[.5]]", "[[1.]]", "[[01]]", "[[-01]]",
    "[[1e]]", "[[1-2]]", "[[1 2]]", "[[]]", "[[1,,2]]", "[[1][2]]", "[[[1]]]", "[[-]]", "[[1, true]]", "[[1, NaN]]",
    "[[1], {\"x\": 2}]", "[[1],[2]]]",
])
def test_anything_else_is_what_json_loads_makes_of_it(matrix: str) -> None:
    expected, got = parse(matrix)
    assert not isinstance(got, np.ndarray)
    assert got == expected  # the same objects, or both refuse the text


def test_a_matrix_inside_a_string_stays_text_and_the_message_is_parsed_as_before() -> None:
    """The string's placeholder would end the string: the reduced message does not parse, and the
    whole line goes to json.loads (the other matrix too)."""
    line = ('{"a": "[' + PAD + '[1,2],[3,4]]", "b": [[1,2]], "c": [' + PAD + '[5, 6]]}').encode()
    value = row_matrices.loads(bytearray(line))
    assert value == json.loads(line) and isinstance(value["c"], list)


def test_undecodable_bytes_read_as_replacement_characters() -> None:
    line = b'{"name": "\xff", "rows": [' + PAD.encode() + b"[1, 2]]}"
    value = row_matrices.loads(bytearray(line))
    assert value["name"] == "\ufffd"
    np.testing.assert_array_equal(value["rows"], [[1.0, 2.0]])


def test_large_matrices_are_judged_in_blocks_and_equal_json() -> None:
    rng = np.random.default_rng(1)
    values = np.round(rng.standard_normal((40_000, 30)), 1)  # several 1 MiB blocks
    line = json.dumps({"current": values.tolist(), "reference": (values * 3).tolist()}).encode()
    parsed = row_matrices.loads(bytearray(line))
    np.testing.assert_array_equal(parsed["current"], values)
    np.testing.assert_array_equal(parsed["reference"], np.array(json.loads(line)["reference"]))


@pytest.mark.parametrize("body", [b"[" * (8 << 20), b"[[1],[" * (1 << 20) + b"]]", b"[[1]" * (2 << 20) + b"]"])
def test_hostile_bracket_runs_cost_no_more_than_their_bytes(body: bytes) -> None:
    """Runs of brackets are judged block by block (no array of every bracket's place): what such a
    line costs beyond itself is json.loads's text, and it is refused as before."""
    import tracemalloc

    line = bytearray(b'{"a": ' + body + b"}")
    tracemalloc.start()
    try:
        with pytest.raises((ValueError, RecursionError)):
            row_matrices.loads(line)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 2 * len(line)
