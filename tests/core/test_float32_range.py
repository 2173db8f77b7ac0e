"""Values beyond float32's range are refused as invalid input, naming row and feature (issue 18, item 4).

`[1e308] * 8` passed the finite check, overflowed in scikit-learn's float32 cast and printed a
plain RuntimeWarning on stderr, breaking "logs are JSON lines".
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from model_mcp.core.errors import InvalidInputError
from model_mcp.core.runtime import parse_rows

NAMES = [f"f{i}" for i in range(8)]
F32_MAX = float(np.finfo(np.float32).max)


@pytest.mark.parametrize("value", [1e308, -1e308, 3.5e38, -3.5e38, 10**39])
def test_lists_beyond_float32_are_refused_naming_row_and_feature(value):
    rows = [[0.0] * 8, [0.0] * 5 + [value] + [0.0] * 2]
    with pytest.raises(InvalidInputError) as caught:
        parse_rows(rows, NAMES, 100)
    assert "row 1" in str(caught.value) and "'f5'" in str(caught.value) and "32-bit" in str(caught.value)


def test_dict_rows_and_arrays_beyond_float32_are_refused():
    row = {name: 0.0 for name in NAMES}
    row["f2"] = 1e300
    with pytest.raises(InvalidInputError, match=r"row 0, feature 'f2'"):
        parse_rows([row], NAMES, 100)
    with pytest.raises(InvalidInputError, match=r"row 3, feature 'f7'.*32-bit"):
        X = np.zeros((4, 8))
        X[3, 7] = -1e39
        parse_rows(X, NAMES, 100)


def test_the_float32_limits_themselves_are_accepted():
    X = parse_rows([[F32_MAX, -F32_MAX, 0.0, 1e-300, 1.0, -1.0, 3e38, 5]], NAMES, 100)
    assert X.shape == (1, 8)


def test_python_warnings_are_json_log_lines(tmp_path):
    code = ("import warnings; from model_mcp.logs import setup_logging; setup_logging();"
            "import numpy as np; np.float32(np.float64(1e308));"
            "warnings.warn('a plain warning')")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert lines, "the warnings went nowhere"
    records = [json.loads(line) for line in lines]  # every line is JSON
    assert any("a plain warning" in r.get("event", "") for r in records)
    assert any("overflow" in r.get("event", "") for r in records)
