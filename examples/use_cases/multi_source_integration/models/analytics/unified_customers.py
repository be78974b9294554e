"""Python-primary: SQL reads the two sources, Python normalises their keys and merges them."""

import pandas as pd

from mixmesh import python_model
from python.keys import canonical_customer_key, canonical_email


@python_model(
    name="analytics.unified_customers",
    grain=["customer_key"],
    columns={
        "customer_key": "VARCHAR",
        "name": "VARCHAR",
        "email": "VARCHAR",
        "balance": "DOUBLE",
        "in_crm": "BOOLEAN",
        "in_billing": "BOOLEAN",
        "matched_by": "VARCHAR",
    },
    description="One row per customer known to the CRM, to billing, or to both.",
)
def unified_customers(context, **kwargs) -> pd.DataFrame:
    crm = context.sql("SELECT customer_id, name, email FROM raw.crm_customers").to_pandas()
    billing = context.sql("SELECT account_ref, email, balance FROM raw.billing_accounts").to_pandas()
    crm["customer_key"] = [canonical_customer_key(key, "raw.crm_customers") for key in crm["customer_id"]]
    crm["email"] = crm["email"].map(canonical_email)
    billing["customer_key"] = [canonical_customer_key(key, "raw.billing_accounts") for key in billing["account_ref"]]
    billing["email"] = billing["email"].map(canonical_email)
    billing["matched_by"] = billing["customer_key"].map(lambda key: None if key is None else "key")
    # Billing rows without a key are matched by email, when the CRM knows the address.
    by_email = dict(zip(crm["email"], crm["customer_key"]))
    keyless = billing["customer_key"].isna()
    billing.loc[keyless, "customer_key"] = billing.loc[keyless, "email"].map(by_email)
    billing.loc[keyless & billing["customer_key"].notna(), "matched_by"] = "email"
    billing = billing.dropna(subset=["customer_key"])
    merged = crm[["customer_key", "name", "email"]].merge(
        billing[["customer_key", "email", "balance", "matched_by"]],
        on="customer_key", how="outer", suffixes=("", "_billing"), indicator=True,
    )
    merged["email"] = merged["email"].fillna(merged["email_billing"])
    merged["in_crm"] = merged["_merge"] != "right_only"
    merged["in_billing"] = merged["_merge"] != "left_only"
    # The outer join leaves NaN for CRM-only customers; mixmesh would store NaN as written,
    # so say NULL (pandas' nullable Float64 turns NaN into NA).
    merged["balance"] = merged["balance"].astype("Float64")
    columns = ["customer_key", "name", "email", "balance", "in_crm", "in_billing", "matched_by"]
    return merged[columns].sort_values("customer_key").reset_index(drop=True)
