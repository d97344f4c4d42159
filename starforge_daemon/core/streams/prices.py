"""What tokens cost while a run has not reported its cost yet.

Claude Code states a cost only in its ``result`` line, at the end; a budget must act before
that. The estimate prices tokens at the list price of the model's family (US dollars per
million tokens; a cache write at 1.25 times the input price, a cache read at a tenth). A model
of no known family has no estimate. A run's recorded figure is always its CLI's own when it
gave one.
"""

from __future__ import annotations

from starforge_daemon.core.streams import Tokens

FAMILY_PRICES = {"opus": (5.0, 25.0), "sonnet": (3.0, 15.0), "haiku": (1.0, 5.0)}
CACHE_WRITE_FACTOR = 1.25
CACHE_READ_FACTOR = 0.1


def estimated_cost(model: str | None, tokens: Tokens) -> float | None:
    family = next((name for name in FAMILY_PRICES if name in (model or "")), None)
    if family is None:
        return None
    input_price, output_price = FAMILY_PRICES[family]
    return (tokens.input * input_price + tokens.output * output_price
            + tokens.cache_creation * input_price * CACHE_WRITE_FACTOR
            + tokens.cache_read * input_price * CACHE_READ_FACTOR) / 1e6
