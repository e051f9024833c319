"""Token prices, USD per million tokens, for the cost figures on every call.

Lookup order: `DURATASK_PRICES` (settings) first, so an operator's own figures win;
then the maintained `genai-prices` snapshot (a dependency; it ships its data, no
network); then the small table of common models below. Unknown
models cost 0 and say so in the log once. The offline `scripted` model costs 0 unless
the settings price it (`scripted/echo`, say: how budgets are tried without spending).
"""

from __future__ import annotations

from duratask.logging import get_logger
from workflows.models import Usage

log = get_logger(__name__)

# (input, output) USD per 1M tokens
DEFAULT_PRICES: dict[str, tuple[float, float]] = {
    "gpt-4o": (2.50, 10.00),
    "gpt-4o-mini": (0.15, 0.60),
    "gpt-4.1": (2.00, 8.00),
    "gpt-4.1-mini": (0.40, 1.60),
    "gpt-4.1-nano": (0.10, 0.40),
    "o4-mini": (1.10, 4.40),
    "claude-3-5-haiku-latest": (0.80, 4.00),
    "claude-3-5-sonnet-latest": (3.00, 15.00),
    "claude-sonnet-4-0": (3.00, 15.00),
    "claude-opus-4-0": (15.00, 75.00),
}
_warned: set[str] = set()


def _genai_prices(provider: str, model: str, usage: Usage) -> float | None:
    try:
        from genai_prices import Usage as GUsage
        from genai_prices import calc_price
    except ImportError:
        return None
    try:
        price = calc_price(
            GUsage(input_tokens=usage.input_tokens, output_tokens=usage.output_tokens),
            model_ref=model,
            provider_id=provider,
        )
    except (LookupError, ValueError):
        return None
    return round(float(price.total_price), 8)


class PriceTable:
    def __init__(
        self, overrides: dict[str, tuple[float, float]] | None = None, use_genai_prices: bool = True
    ) -> None:
        self.overrides = dict(overrides or {})
        self.prices = {**DEFAULT_PRICES, **self.overrides}
        self.use_genai_prices = use_genai_prices

    def cost(
        self,
        provider: str,
        model: str | None,
        usage: Usage,
        endpoint_prices: dict[str, tuple[float, float]] | None = None,
        vendor: bool = True,
    ) -> float:
        """`endpoint_prices` (the endpoint's own) win; a server that is not the vendor's
        own (`vendor=False`) is priced only from explicit figures, else costs 0."""
        if not model:
            return 0.0
        own = (endpoint_prices or {}).get(model)
        if own is not None:
            return _priced(usage, own)
        explicit = self.overrides.get(model) or self.overrides.get(f"{provider}/{model}")
        if provider == "scripted" and explicit is None:  # free unless priced in settings
            return 0.0
        if explicit is None and not vendor:
            return 0.0
        if explicit is None and self.use_genai_prices:
            maintained = _genai_prices(provider, model, usage)
            if maintained is not None:
                return maintained
        price = self.prices.get(model) or self.prices.get(f"{provider}/{model}")
        if price is None:
            if model not in _warned:
                _warned.add(model)
                log.info("no price for model; cost recorded as 0", model=model)
            return 0.0
        return _priced(usage, price)


def _priced(usage: Usage, price: tuple[float, float]) -> float:
    return round((usage.input_tokens * price[0] + usage.output_tokens * price[1]) / 1_000_000, 8)
