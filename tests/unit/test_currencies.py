"""Amounts are in ISO 4217 currencies only, wherever they enter."""

from __future__ import annotations

import pytest

from streams.domain.common.currencies import is_currency
from streams.domain.orders.inputs import OrderEvent
from streams.domain.recon.inputs import parse_settlement
from streams.providers.base import Fields, Rejection
from tests.builders import NOW_MS, order_event, payment_event, settlement_line

MADE_UP = ("XYZ", "ABC", "usd", "US", "USDX", "XXX", "XTS", "XAU", "")


def test_real_codes_pass_and_made_up_ones_do_not():
    assert all(is_currency(code) for code in ("USD", "EUR", "CNY", "JPY", "HKD", "GBP", "XOF"))
    assert not any(is_currency(code) for code in (*MADE_UP, None, 840))


@pytest.mark.parametrize("currency", MADE_UP)
def test_orders_payments_and_settlement_lines_refuse_a_made_up_currency(currency):
    with pytest.raises(ValueError, match="ISO 4217"):
        OrderEvent.from_record(order_event("o-1", currency=currency))
    with pytest.raises(ValueError, match="ISO 4217"):
        payment_event("o-1", currency=currency)
    if currency:  # an empty one is "no currency" on a line, refused by required_text
        with pytest.raises(ValueError, match="ISO 4217"):
            parse_settlement(settlement_line("r-1", "b-1", "o-1", 100, NOW_MS,
                                             currency=currency))


def test_a_provider_may_send_lower_case_but_the_code_must_exist():
    assert Fields({"currency": "usd"}, "data").currency("currency") == "USD"
    with pytest.raises(Rejection, match="ISO 4217"):
        Fields({"currency": "xyz"}, "data").currency("currency")
