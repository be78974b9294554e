"""The business's order rules, in Python: each rule is a small function of one order that
returns its violation code or None. ``order_violations`` applies them all to one row.

A NULL in a column a rule needs is a violation of its own (``missing_<column>``), not a
reason to skip the order: ``null_handling="call"`` passes NULLs in as None.
"""

from __future__ import annotations

import re
from datetime import date
from decimal import Decimal

from mixmesh import udf

# Kept as strings: SQLMesh stores module values by their repr, and Decimal('0.30') would not
# read back in the stored code (it has no `Decimal` in scope there).
# Discounts above this need a gold customer.
MAX_DISCOUNT = "0.30"
# Rounding a line total may move it by a cent.
TOTAL_TOLERANCE = "0.01"
EMAIL_PATTERN = r"^[^@\s]+@[^@\s]+\.[a-z]{2,}$"
# What each code means (the README lists them).
RULES = {
    "quantity_not_positive": "quantity must be at least 1",
    "discount_above_limit": "a discount above 30% needs a gold customer",
    "total_mismatch": "total must be quantity x unit price x (1 - discount), within a cent",
    "ships_before_order": "an order cannot ship before it is placed",
    "invalid_email": "the email address must look like one",
}


def missing(order: dict) -> list[str]:
    return [f"missing_{name}" for name in ("quantity", "unit_price", "discount", "total", "order_date", "email") if order[name] is None]


def quantity_rule(order: dict) -> str | None:
    return "quantity_not_positive" if order["quantity"] is not None and order["quantity"] < 1 else None


def discount_rule(order: dict) -> str | None:
    over = order["discount"] is not None and order["discount"] > Decimal(MAX_DISCOUNT)
    return "discount_above_limit" if over and order["customer_tier"] != "gold" else None


def total_rule(order: dict) -> str | None:
    needed = ("quantity", "unit_price", "discount", "total")
    if any(order[name] is None for name in needed):
        return None
    expected = order["quantity"] * order["unit_price"] * (1 - order["discount"])
    return "total_mismatch" if abs(order["total"] - expected) > Decimal(TOTAL_TOLERANCE) else None


def shipping_rule(order: dict) -> str | None:
    # An order not shipped yet (NULL ship_date) breaks nothing.
    shipped, placed = order["ship_date"], order["order_date"]
    return "ships_before_order" if shipped is not None and placed is not None and shipped < placed else None


def email_rule(order: dict) -> str | None:
    email = order["email"]
    return "invalid_email" if email is not None and not re.match(EMAIL_PATTERN, email) else None


@udf(null_handling="call")
def order_violations(
    quantity: int | None,
    unit_price: Decimal | None,
    discount: Decimal | None,
    total: Decimal | None,
    customer_tier: str | None,
    order_date: date | None,
    ship_date: date | None,
    email: str | None,
) -> list[str]:
    """The codes of the rules one order breaks, in a fixed order; empty when it breaks none."""
    order = dict(quantity=quantity, unit_price=unit_price, discount=discount, total=total,
                 customer_tier=customer_tier, order_date=order_date, ship_date=ship_date, email=email)
    found = missing(order)
    for rule in (quantity_rule, discount_rule, total_rule, shipping_rule, email_rule):
        code = rule(order)
        if code is not None:
            found.append(code)
    return found
