"""Admin helpers that need no broker (the admin API itself is tested against real Kafka in
``tests/integration/test_admin.py``)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trio_brod import admin


@given(st.integers(0, 2**31 - 1))
def test_timeouts_in_whole_ms_are_sent_exactly(ms: int) -> None:
    # 2.007 * 1000 is 2007.0000000000002 as a float: rounding up must not make it 2008.
    assert admin._ms(ms / 1000) == ms


@pytest.mark.parametrize(("seconds", "ms"), [(0.0001, 1), (0.0015, 2), (0, 0)])
def test_a_positive_timeout_is_rounded_up_never_to_zero(seconds: float, ms: int) -> None:
    assert admin._ms(seconds) == ms
