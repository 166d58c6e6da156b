"""Issue 18's speed benchmark still runs, and its property still holds.

``benchmarks/fake_property.py`` is a property of its own: each example must get back exactly
what it produced through a two-member group, and the two members must end up sharing the
partitions in one generation. A change to the fake or to the groups that breaks that fails
here, a few examples at a time, rather than the next time someone measures. Speed is not
looked at.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARK = Path(__file__).resolve().parents[2] / "benchmarks" / "fake_property.py"


def run_benchmark(*args: str) -> str:
    completed = subprocess.run(
        [sys.executable, str(BENCHMARK), *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    output = completed.stdout + completed.stderr
    assert completed.returncode == 0, output[-4000:]
    return completed.stdout


def test_the_shared_fake_property_holds_and_reports_its_time() -> None:
    out = run_benchmark("--examples", "25", "--hypothesis-alone")
    assert re.search(r"^25 examples in [0-9.]+ s \([0-9.]+ ms per example\)$", out, re.M), out
    assert re.search(
        r"^hypothesis alone \(the same strategies, an empty test body\): [0-9.]+ s; "
        r"the property took [0-9.]+ times as long$",
        out,
        re.M,
    ), out


@pytest.mark.parametrize("flag", ["--per-example", "--gc-freeze"])
def test_the_other_forms_of_the_property_hold(flag: str) -> None:
    out = run_benchmark("--examples", "5", flag)
    assert re.search(r"^5 examples in [0-9.]+ s", out, re.M), out
