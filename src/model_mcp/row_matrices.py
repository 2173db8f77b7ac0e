"""Parse a large JSON-RPC message whose rows are matrices of numbers, without a Python float per number.

`json.loads` makes every number a Python float (24 bytes) in a list slot (8 bytes), and every row a
list: for the shortest numbers a message can hold (`0.5, `, 5 bytes a number) that is about 8.4 times
the message's bytes before the rows become arrays, and a `drift_report` of 100,000 x 29 one-decimal
values a side (30.8 MiB) raised the server's peak RSS by 12.1x the request (3.7x now). Each large matrix of
numbers in the message (`[[n, n, ...], [n, n, ...], ...]`, rows of equal length) is parsed straight
from the line's bytes into one float64 array (8 bytes a number), the rest of the message by
`json.loads` as before; the tools take such an array where they take rows (`runtime.parse_rows`
accepts a 2-D numeric array with the same checks). A tool argument typed as anything but `Any`
would have pydantic judge the array instead; the rows arguments are `Any` on purpose.

Only what is exactly a JSON matrix of numbers is taken: the bytes hold only digits, `-+.eE`, commas,
brackets and whitespace, every number is one JSON allows (no `+1`, `.5`, `1.`, `01`, `NaN`), the
brackets nest exactly two deep and every row has as many numbers as the first. A matrix inside a
JSON string cannot be taken for one: its placeholder would end the string and the reduced message
would not parse, so the whole message is then parsed by `json.loads` as before. Anything else
(objects as rows, ragged rows, a `true`) also goes to `json.loads`, whose objects the tools judge
and refuse with the contract's sentences.
"""

from __future__ import annotations

import json
import re
import secrets
import warnings
from typing import Any

import numpy as np

# Matrices smaller than this stay with json.loads: below it, objects cost little and speed wins.
MIN_MATRIX_BYTES = 256 * 1024
# The start of a matrix, and the longest run of the bytes a matrix of numbers may hold.
_CANDIDATE = re.compile(rb"\[\s*\[[0-9eE+\-.,\[\]\s]*")

_D, _MINUS, _PLUS, _DOT, _E, _COMMA, _OPEN, _CLOSE, _SPACE = range(1, 10)
_CLASS = np.zeros(256, dtype=np.uint8)  # 0: a byte no matrix of numbers holds
_CLASS[np.frombuffer(b"0123456789", np.uint8)] = _D
_CLASS[ord("-")], _CLASS[ord("+")], _CLASS[ord(".")] = _MINUS, _PLUS, _DOT
_CLASS[ord("e")] = _CLASS[ord("E")] = _E
_CLASS[ord(",")], _CLASS[ord("[")], _CLASS[ord("]")] = _COMMA, _OPEN, _CLOSE
_CLASS[np.frombuffer(b" \t\n\r", np.uint8)] = _SPACE
_NUMBERISH = (_D, _MINUS, _PLUS, _DOT, _E)
_BLOCK = 1 << 20  # bytes judged at a time: the checks' temporaries stay this small


def loads(line: bytearray | bytes, *, errors: str = "replace") -> Any:
    """The JSON value of `line`, its large number matrices as float64 arrays (see the module doc).

    Raises what `json.loads` raises for a line that is no JSON. Undecodable bytes read as U+FFFD
    (as the SDK's stdio reader does); `errors="strict"` raises UnicodeDecodeError for them instead.
    """
    def _json(data: bytearray | bytes) -> Any:
        return json.loads(data.decode("utf-8", errors=errors))

    if len(line) < MIN_MATRIX_BYTES:
        return _json(line)
    matrices: dict[str, np.ndarray] = {}
    pieces: list[bytes] = []
    nonce = secrets.token_hex(8)
    view = memoryview(line).toreadonly()
    done = 0
    for match in _CANDIDATE.finditer(line):
        start, end = match.start(), _last_close(line, match.start(), match.end())
        if start < done or end - start < MIN_MATRIX_BYTES:
            continue
        array = _matrix(view[start:end])
        if array is None:
            continue
        token = f"__matrix_{nonce}_{len(matrices)}__"
        matrices[token] = array
        pieces += [bytes(view[done:start]), b'"', token.encode(), b'"']
        done = end
    if not matrices:
        return _json(line)
    pieces.append(bytes(view[done:]))
    del view
    try:
        value = _json(b"".join(pieces))
    except ValueError:
        return _json(line)  # a "matrix" inside a string, or the message is no JSON: as before
    del pieces
    return _put_back(value, matrices)


def _put_back(value: Any, matrices: dict[str, np.ndarray]) -> Any:
    """`value` with each placeholder string replaced by its array (the rest is small by now)."""
    if isinstance(value, str):
        return matrices.get(value, value)
    if isinstance(value, list):
        return [_put_back(item, matrices) for item in value]
    if isinstance(value, dict):
        return {key: _put_back(item, matrices) for key, item in value.items()}
    return value


def _last_close(line: bytearray | bytes, start: int, end: int) -> int:
    """The end of the run at its last `]` (the run may take a comma or spaces after the matrix)."""
    last = line.rfind(b"]", start, end)
    return last + 1 if last >= 0 else start


def _matrix(data: memoryview) -> np.ndarray | None:
    """The (rows, columns) float64 array of a JSON matrix of numbers, or None if `data` is not one.

    Judged in blocks of `_BLOCK` bytes with what one block hands the next carried along (the last
    kinds, the last bracket, the commas of the row still open), so that nothing but the result costs
    memory in proportion to the matrix, whatever the bytes (a line of `[[[[...` too); then one
    `np.fromstring` over the bytes with the brackets read as spaces.
    """
    raw = np.frombuffer(data, dtype=np.uint8)
    n = len(raw)
    if n < 4 or raw[0] != ord("[") or raw[-1] != ord("]"):
        return None
    carry = np.zeros(0, dtype=np.uint8)  # the last two non-space kinds before this block
    last_bracket = 0  # the kind of the last bracket before this block (0: none yet)
    rows, columns, open_commas = 0, -1, 0  # open_commas: the commas since the last row's `[`
    for start in range(0, n, _BLOCK):
        stop = min(start + _BLOCK, n)
        lo, hi = max(0, start - 2), min(n, stop + 1)
        window = _CLASS[raw[lo:hi]]
        if not window.all():
            return None  # a byte no matrix of numbers holds
        # ext[2 + j] is the kind of byte start + j, with two kinds before it and one after; the
        # data's edges read as spaces.
        ext = np.concatenate([np.full(2 - (start - lo), _SPACE, np.uint8), window,
                              np.full(1 - (hi - stop), _SPACE, np.uint8)])
        if not _numbers_are_json(ext, raw[start:stop]):
            return None
        here = ext[2:-1]
        packed = np.concatenate([carry, here[here != _SPACE]])
        if start == 0 and (len(packed) < 2 or packed[1] != _OPEN):
            return None  # the first item is a row
        if not _separators_fit(packed):
            return None
        carry = packed[-2:]
        # Brackets alternate `[` `]` after the outer `[` (and before the outer `]`): rows two deep.
        brackets = here[(here == _OPEN) | (here == _CLOSE)]
        if len(brackets):
            sequence = np.concatenate([[last_bracket], brackets]) if last_bracket else brackets[1:]
            same = sequence[1:] == sequence[:-1]
            if start + _BLOCK >= n:
                same = same[:-1]  # the outer `]` closes after a row's `]`
            if same.any():
                return None
            last_bracket = int(brackets[-1])
        # Numbers per row: the commas from a row's `[` to the next row's `[` (its own and the one
        # between rows) are the same for every row but the last, which has one fewer.
        opens = np.flatnonzero(here == _OPEN)
        if start == 0:
            opens = opens[1:]  # the outer `[`
        commas = np.flatnonzero(here == _COMMA)
        if len(opens):
            before = np.searchsorted(commas, opens)
            counts = np.diff(before)
            if rows:
                counts = np.concatenate([[open_commas + before[0]], counts])
            if len(counts):
                if columns < 0:
                    columns = int(counts[0])
                if (counts != columns).any():
                    return None  # ragged rows: the tools name the row that differs
            rows += len(opens)
            open_commas = len(commas) - int(before[-1])
        else:
            open_commas += len(commas)
    if len(carry) < 2 or carry[0] != _CLOSE or rows == 0:
        return None  # the last item is a row
    if rows == 1:
        columns = open_commas + 1
    if open_commas != columns - 1:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # numpy warns, and stops, at bytes it cannot read
        try:
            values = np.fromstring(bytes(data).translate(_NO_BRACKETS), dtype=np.float64, sep=",")
        except (ValueError, DeprecationWarning):
            return None
    if values.size != rows * columns:
        return None
    return values.reshape(rows, columns)


_NO_BRACKETS = bytes.maketrans(b"[]", b"  ")


def _numbers_are_json(ext: np.ndarray, chars: np.ndarray) -> bool:
    """Each number of a block as JSON writes it, judged from each byte's neighbours (`ext`: the block's
    kinds with two before and one after; `chars`: its bytes): no `+1`, `.5`, `1.`, `1e`, `01`, `-01`,
    `1-2`. Whitespace inside a number splits it in two, and the parse stops there."""
    here, before, after, before2 = ext[2:-1], ext[1:-2], ext[3:], ext[:-3]
    digit_after = after == _D
    if ((here == _PLUS) & (before != _E)).any():
        return False  # a '+' only signs an exponent
    if ((here == _MINUS) & (~digit_after | (before == _D) | (before == _DOT))).any():
        return False  # a '-' starts a number or an exponent, and a digit follows
    if ((here == _DOT) & ~((before == _D) & digit_after)).any():
        return False  # a '.' between digits
    if ((here == _E) & ((before != _D) | ~(digit_after | (after == _PLUS) | (after == _MINUS)))).any():
        return False  # an exponent after a digit, then a digit or a sign
    # No leading zero: a '0' followed by a digit does not start a number's integer part (an
    # exponent's may: `1e05`).
    zeros = np.flatnonzero((chars == ord("0")) & digit_after)
    if len(zeros):
        kind = before[zeros]
        starts = ~np.isin(kind, _NUMBERISH)
        signed = (kind == _MINUS) & (before2[zeros] != _E)
        if (starts | signed).any():
            return False
    return True


def _separators_fit(packed: np.ndarray) -> bool:
    """The order of brackets, commas and numbers once spaces are out: no empty item or trailing
    comma, a comma between rows, and only rows at the top level."""
    prev, nxt = packed[:-1], packed[1:]
    if (((prev == _OPEN) | (prev == _COMMA)) & ((nxt == _COMMA) | (nxt == _CLOSE))).any():
        return False
    if ((prev == _CLOSE) & (nxt != _COMMA) & (nxt != _CLOSE)).any():
        return False
    if (np.isin(prev, _NUMBERISH) & (nxt == _OPEN)).any():
        return False
    return not ((packed[:-2] == _CLOSE) & (packed[1:-1] == _COMMA) & (packed[2:] != _OPEN)).any()
