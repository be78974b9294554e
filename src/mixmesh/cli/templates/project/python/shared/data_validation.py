"""Checks for data crossing between SQL and Python: fail early, naming the column and a row."""

from __future__ import annotations

import pandas as pd


class DataValidationError(ValueError):
    """Rows from SQL, or for SQL, are not what the other side expects."""

    pass  # SQLMesh stores project classes without their docstring: the body must not be empty


def require_columns(frame: pd.DataFrame, columns: list[str], *, where: str) -> pd.DataFrame:
    """The frame, if it has every column; otherwise a DataValidationError naming the missing ones."""
    missing = [column for column in columns if column not in frame.columns]
    if missing:
        raise DataValidationError(f"{where}: missing column(s) {missing}; the columns are {list(frame.columns)}")
    return frame


def require_not_null(frame: pd.DataFrame, columns: list[str], *, where: str) -> pd.DataFrame:
    """The frame, if the columns hold no NULL; otherwise an error showing the first such row."""
    for column in columns:
        nulls = frame[frame[column].isna()]
        if len(nulls):
            raise DataValidationError(f"{where}: {len(nulls)} NULL(s) in {column}, e.g. {nulls.iloc[0].to_dict()}")
    return frame


def require_between(frame: pd.DataFrame, column: str, low: float, high: float, *, where: str) -> pd.DataFrame:
    """The frame, if every value of the column is within [low, high]; otherwise an error showing one outside."""
    outside = frame[(frame[column] < low) | (frame[column] > high)]
    if len(outside):
        raise DataValidationError(
            f"{where}: {len(outside)} value(s) of {column} outside [{low}, {high}], e.g. {outside.iloc[0].to_dict()}"
        )
    return frame
