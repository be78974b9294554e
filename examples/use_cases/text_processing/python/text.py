"""Text processing on string columns: merchant names and support messages.

Both functions are plain Python, called from SQL with ``@normalise_merchant(...)`` and
``@classify_message(...)``; tests call them directly too. Constants are plain strings,
tuples and dicts: SQLMesh stores a function's module values by their ``repr``.
"""

from __future__ import annotations

import re
import unicodedata

from mixmesh import udf

# Card processors put their own prefix before the merchant: "SQ *BLUE BOTTLE", "PAYPAL *SHOP".
PROCESSOR_PREFIX = r"^(?:sq|tst|paypal|pp|sp)\s*\*\s*"
# Whatever follows a '*' in a descriptor is a reference ("AMZN Mktp US*2K4LT9").
REFERENCE_SUFFIX = r"\*.*$"
# Store numbers and web domains say nothing about who the merchant is.
STORE_NUMBER = r"(?:\s#?\d+)+$"
WEB_DOMAIN = r"\.(?:com|net|org|de|fr|co\.uk)$"
GENERIC_WORDS = ("coffee", "inc", "ltd", "llc", "gmbh")
ALIASES = {"amzn mktp us": "amazon", "amzn mktp": "amazon", "amzn": "amazon"}

# Topics in order of precedence: a message asking for a refund of a late parcel is a refund.
TOPIC_KEYWORDS = (
    ("refund", ("refund", "money back", "charged twice", "remboursement", "ruckerstattung", "reembolso")),
    ("delivery", ("parcel", "delivery", "delivered", "arrived", "tracking", "lieferung", "pedido", "envio", "livraison")),
    ("account", ("password", "log in", "login", "locked out", "account", "compte", "konto")),
)


def fold(text: str) -> str:
    """Text compared as people read it: compatibility forms unified (full-width letters
    become ASCII), accents dropped, case folded (German ß becomes ss), spaces collapsed."""
    compatible = unicodedata.normalize("NFKC", text)
    decomposed = unicodedata.normalize("NFKD", compatible)
    unaccented = "".join(char for char in decomposed if not unicodedata.combining(char))
    return " ".join(unaccented.casefold().split())


@udf
def normalise_merchant(merchant_raw: str) -> str | None:
    """The merchant behind a card descriptor ("SQ *BLUE BOTTLE COFFEE #0042" -> "blue bottle"),
    or NULL when nothing is left of it (a blank descriptor)."""
    name = fold(merchant_raw)
    name = re.sub(PROCESSOR_PREFIX, "", name)
    name = re.sub(REFERENCE_SUFFIX, "", name)
    name = re.sub(WEB_DOMAIN, "", name)
    name = re.sub(STORE_NUMBER, "", name)
    name = " ".join(re.sub(r"[^\w\s]", " ", name).split())
    name = ALIASES.get(name, name)
    words = name.split()
    while len(words) > 1 and words[-1] in GENERIC_WORDS:
        words.pop()
    return " ".join(words) or None


@udf(null_handling="call")
def classify_message(body: str | None) -> str:
    """The topic of a support message: refund, delivery, account, other; 'empty' for NULL or blank.

    ``null_handling="call"``: a NULL body is passed as None (by default the function would not
    be called and the row would get NULL), so every message gets a topic.
    """
    if body is None or not body.strip():
        return "empty"
    text = fold(body)
    for topic, keywords in TOPIC_KEYWORDS:
        if any(re.search(rf"\b{re.escape(keyword)}\b", text) for keyword in keywords):
            return topic
    return "other"
