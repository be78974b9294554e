"""Cross-language validation: what a frame must hold where data crosses between SQL and Python.

A schema maps each column to a rule made by ``column()``; ``validate_features`` checks a
DataFrame against it and raises one ``DataValidationError`` listing every problem, each
naming the column and showing an offending row::

    LTV_FEATURES = {
        "customer_id": column("string"),
        "churn_risk": column("number", nullable=True, min=0, max=1),
    }
    features = validate_features(features, LTV_FEATURES, name="LTV features", key="customer_id")

Rules are plain dicts, not objects: SQLMesh stores a model's module-level values by their
repr and reads them back before the project's classes exist, so a rule must be a builtin.
"""

from __future__ import annotations

import datetime as dt
import typing as t

import numpy as np
import pandas as pd

KINDS = ("number", "integer", "string", "date", "bool")
_A = {"number": "a number", "integer": "an integer", "string": "a string", "date": "a date", "bool": "a boolean"}


class DataValidationError(ValueError):
    """A frame does not hold what its schema says; ``problems`` has one line per problem."""

    def __init__(self, message: str, problems: t.List[str]) -> None:
        super().__init__(message)
        self.problems = problems


def column(kind: str = "number", *, nullable: bool = False, min: t.Optional[float] = None, max: t.Optional[float] = None) -> dict:
    """The rule of one column: its kind, whether NULL (or NaN) may appear, its range (bounds included)."""
    if kind not in KINDS:
        raise ValueError(f"column kind must be one of {', '.join(KINDS)}, not {kind!r}")
    if (min is not None or max is not None) and kind not in ("number", "integer"):
        raise ValueError(f"a {kind} column has no range; min and max are for numbers")
    return {"kind": kind, "nullable": nullable, "min": min, "max": max}


def validate_features(
    df: pd.DataFrame, schema: t.Mapping[str, dict], *, name: str = "features", key: t.Union[str, t.Sequence[str], None] = None
) -> pd.DataFrame:
    """``df`` unchanged if it holds what ``schema`` says, else a DataValidationError listing every problem.

    Infinities are never allowed in numbers (no model or table wants them). ``key`` names the
    column(s) identifying a row: they must be unique, and messages show them for a bad row.
    Columns the schema does not name are not checked.
    """
    keys = [key] if isinstance(key, str) else list(key or [])
    missing = [c for c in [*schema, *keys] if c not in df.columns]
    if missing:
        problems = [f"column {c!r} is missing (the frame has {list(df.columns)})" for c in dict.fromkeys(missing)]
    else:
        problems = [p for c, rule in schema.items() for p in _column_problems(df, c, rule, keys)]
        problems += _duplicate_keys(df, keys)
    if len(problems) == 1:
        raise DataValidationError(f"{name}: {problems[0]}", problems)
    if problems:
        raise DataValidationError(f"{name}: {len(problems)} problems\n" + "\n".join(f"  - {p}" for p in problems), problems)
    return df


def validate_predictions(
    df: pd.DataFrame,
    caps: t.Mapping[str, float],
    *,
    value: str = "predicted_ltv",
    confidence: str = "prediction_confidence",
    segment: str = "customer_segment",
    key: str = "customer_id",
    name: str = "predictions",
) -> pd.DataFrame:
    """``df`` unchanged if predictions are finite, confidences within 0..1 and no value is above its segment's cap.

    A missing prediction (NaN) is allowed: the output step drops those rows, as the seed does.
    Segments without a cap are not capped.
    """
    schema = {value: column("number", nullable=True), confidence: column("number", min=0, max=1), segment: column("string", nullable=True)}
    validate_features(df, schema, name=name, key=key)
    cap = df[segment].map(caps).astype(float)  # NaN where the segment has no cap
    over = df[value].astype(float) > cap
    if over.any():
        problem = _problem(df, over, value, f"above the cap of its {segment}", [key, segment])
        raise DataValidationError(f"{name}: {problem}", [problem])
    return df


def _column_problems(df: pd.DataFrame, name: str, rule: dict, keys: t.List[str]) -> t.List[str]:
    series = df[name]
    wrong_type = _wrong_type(series, rule["kind"])
    if wrong_type is not None:
        return [_problem(df, wrong_type, name, f"not {_A[rule['kind']]} (dtype {series.dtype})", keys)]
    problems = []
    if not rule["nullable"] and series.isna().any():
        problems.append(_problem(df, series.isna(), name, "NULL or NaN", keys))
    if rule["kind"] in ("number", "integer"):
        values = series.to_numpy(dtype=float, na_value=np.nan)
        checks = [(np.isinf(values), "infinite")]
        values = np.where(np.isinf(values), np.nan, values)  # NaN compares False: reported once, above
        if rule["min"] is not None:
            checks.append((values < rule["min"], f"below the minimum {rule['min']}"))
        if rule["max"] is not None:
            checks.append((values > rule["max"], f"above the maximum {rule['max']}"))
        problems += [_problem(df, mask, name, what, keys) for mask, what in checks if mask.any()]
    return problems


def _wrong_type(series: pd.Series, kind: str) -> t.Optional[np.ndarray]:
    """Where values are not of ``kind`` (NULLs aside), or None when every value is."""
    present = series.notna().to_numpy()
    if kind in ("number", "integer"):
        if pd.api.types.is_bool_dtype(series) or not pd.api.types.is_numeric_dtype(series):
            return present
        if kind == "integer" and not pd.api.types.is_integer_dtype(series):
            # Integers with NULLs often arrive as floats: whole numbers are integers.
            values = series.to_numpy(dtype=float, na_value=np.nan)
            fractional = present & ~(np.isfinite(values) & (values == np.round(values)))
            return fractional if fractional.any() else None
        return None
    if kind == "string" and pd.api.types.infer_dtype(series, skipna=True) in ("string", "empty"):
        return None  # the common case, decided without a Python call per value
    if kind == "date" and pd.api.types.is_datetime64_any_dtype(series):
        return None
    if kind == "bool" and pd.api.types.is_bool_dtype(series):
        return None
    accepted = {"string": str, "date": (dt.date, pd.Timestamp), "bool": (bool, np.bool_)}[kind]
    wrong = present & ~series.map(lambda v: isinstance(v, accepted)).to_numpy(dtype=bool)
    return wrong if wrong.any() else None


def _problem(df: pd.DataFrame, mask: t.Any, name: str, what: str, keys: t.List[str]) -> str:
    """``column 'x': 2 value(s) <what>, e.g. row customer_id='C7': 1.4``."""
    mask = np.asarray(mask, dtype=bool)
    position = int(np.argmax(mask))
    shown = [k for k in keys if k != name]
    row = ", ".join(f"{k}={_plain(df[k].iloc[position])!r}" for k in shown) if shown else f"at position {position}"
    return f"column {name!r}: {int(mask.sum())} value(s) {what}, e.g. row {row}: {_plain(df[name].iloc[position])!r}"


def _plain(value: t.Any) -> t.Any:
    """numpy scalars as Python values: messages read 1.5, not np.float64(1.5)."""
    return value.item() if isinstance(value, np.generic) else value


def _duplicate_keys(df: pd.DataFrame, keys: t.List[str]) -> t.List[str]:
    if not keys:
        return []
    present = df[keys].notna().all(axis=1)  # a NULL key is the column rule's business
    duplicated = present & df[keys].duplicated(keep=False)
    if not duplicated.any():
        return []
    first = df.loc[duplicated, keys].iloc[0]
    example = ", ".join(f"{k}={_plain(first[k])!r}" for k in keys)
    count = int((df.loc[present, keys] == first.to_numpy()).all(axis=1).sum())
    return [f"key {', '.join(keys)} is not unique: {int(duplicated.sum())} row(s) share a key, e.g. {example} appears in {count} rows"]
