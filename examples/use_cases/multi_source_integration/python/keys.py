"""Keys and emails of two systems brought to one form, so their rows can be joined.

The CRM writes ``CUST-00012``; billing writes ``12``, ``cust_12``, ``C12`` or ``00012``, padded
with spaces, or nothing at all (then the email is the only link).
"""

from __future__ import annotations

import re

# The digits of a key, after an optional prefix: "CUST-", "cust_", "C".
KEY_PATTERN = r"^(?:cust[-_ ]?|c ?)?0*(\d+)$"


def canonical_customer_key(raw: str | None, source: str) -> str | None:
    """``C00012`` for every spelling of customer 12; None for a missing key; a ValueError
    naming the source and the value for anything else (a key nobody can match is a bug in
    the feed, not a customer to drop silently)."""
    if raw is None or not raw.strip():
        return None
    match = re.match(KEY_PATTERN, raw.strip().casefold())
    if match is None:
        raise ValueError(f"{source}: customer key {raw!r} is not a customer number (expected e.g. CUST-00012, cust_12, C12 or 12)")
    return f"C{int(match.group(1)):05d}"


def canonical_email(raw: str | None) -> str | None:
    """Emails compare without case or surrounding spaces."""
    return raw.strip().casefold() if raw and raw.strip() else None
