"""The README's first example runs as written and gives seed 002's AGQ(25) numbers."""
import re
import warnings
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_readme_example_runs():
    text = (ROOT / "README.md").read_text()
    code = re.search(r"```python\n(.*?)```", text, flags=re.S).group(1)
    ns: dict = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        exec(compile(code, "README.md", "exec"), ns)
    ml, post = ns["ml"], ns["post"]
    assert ml.fixef["(Intercept)"] == pytest.approx(-1.6146, abs=1e-3)
    assert post.fixef["Month"] == pytest.approx(ml.fixef["Month"], abs=0.03)
    p = post.predict(ns["newdata"], kind="mean", new_levels="population")
    assert p.shape == (2,) and p[0] > p[1]  # severe onycholysis becomes less likely over the year
