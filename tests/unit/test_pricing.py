"""Cost of a call: the operator's prices win, then genai-prices' bundled data, then ours."""

from __future__ import annotations

import pytest

from activities.llm.pricing import PriceTable
from workflows.models import Usage

MILLION = Usage(input_tokens=1_000_000, output_tokens=1_000_000)


def test_maintained_prices_are_used_offline() -> None:
    assert PriceTable().cost("openai", "gpt-4o-mini", MILLION) == pytest.approx(0.75)


def test_operator_prices_win_and_scripted_is_free() -> None:
    table = PriceTable({"gpt-4o-mini": (1.0, 2.0)})
    assert table.cost("openai", "gpt-4o-mini", MILLION) == pytest.approx(3.0)
    assert table.cost("scripted", "echo", MILLION) == 0.0


def test_unknown_model_costs_nothing() -> None:
    assert PriceTable().cost("openai", "my-own-finetune-xyz", MILLION) == 0.0
