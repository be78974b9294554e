"""When do billing and the warehouse tell the same story about an order? Tolerance rules in
Python, applied to each order's two sides by ``@order_mismatches``."""

from __future__ import annotations

from datetime import date

from mixmesh import udf

# Amounts agree within half a percent of the billed amount, or a cent, whichever is larger
# (the warehouse rounds converted prices).
RELATIVE_TOLERANCE = 0.005
ABSOLUTE_TOLERANCE = 0.01
# An order ships at most this many days after it is invoiced.
MAX_SHIPPING_DAYS = 3
# The warehouse status each billing status goes with.
COMPATIBLE_STATUS = {"paid": "SHP", "refunded": "RTN", "cancelled": "CXL"}


def amounts_agree(billed: float, shipped: float) -> bool:
    return abs(billed - shipped) <= max(ABSOLUTE_TOLERANCE, RELATIVE_TOLERANCE * abs(billed))


@udf(null_handling="call")
def order_mismatches(
    billed_amount: float | None,
    billing_status: str | None,
    invoiced_on: date | None,
    shipped_amount: float | None,
    status_code: str | None,
    shipped_on: date | None,
) -> list[str]:
    """The ways the two systems disagree about one order; empty when they agree."""
    if billing_status is None:
        return ["missing_in_billing"]
    if status_code is None:
        return ["missing_in_warehouse"]
    found = []
    if billed_amount is None or shipped_amount is None or not amounts_agree(billed_amount, shipped_amount):
        found.append("amount_mismatch")
    if COMPATIBLE_STATUS.get(billing_status) != status_code:
        found.append("status_mismatch")
    if shipped_on is not None and invoiced_on is not None and not 0 <= (shipped_on - invoiced_on).days <= MAX_SHIPPING_DAYS:
        found.append("shipping_delay")
    return found
