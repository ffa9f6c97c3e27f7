"""Table helpers of repaudit.tables used by the workflow scripts."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from repaudit.tables import paired_correct


def test_paired_correct():
    a = pd.DataFrame({"id": ["x", "y", "z"], "correct": [1, 0, 1]})
    b = pd.DataFrame({"id": ["x", "y", "z"], "correct": [True, True, False]})
    out = paired_correct({"a": a, "b": b})
    assert list(out) == ["a", "b"]
    np.testing.assert_array_equal(out["a"], [True, False, True])
    assert out["b"].dtype == bool
    with pytest.raises(ValueError, match="c: test images differ from those of a"):
        paired_correct({"a": a, "c": b.iloc[::-1]})
