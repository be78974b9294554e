"""The project built with SQLMesh on DuckDB: the columns follow config.yaml, the values match a
pandas pivot of the CSV, and editing the variable changes the table's columns on the next plan."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pandas as pd
import pytest

from mixmesh.testing import copy_project
from ruamel.yaml import YAML

PROJECT = Path(__file__).resolve().parents[1]
# Column names by hand. (Tests do not import macros/: a @macro imported from the project
# outside SQLMesh's loader is registered from a path SQLMesh does not treat as the project's.)
SLUGS = {"Grocery": "grocery", "Travel": "travel", "Dining": "dining", "Home & Garden": "home_garden", "Books": "books"}


def configured_categories(project: Path = PROJECT) -> list[str]:
    return YAML(typ="safe").load(project / "config.yaml")["variables"]["pivot_categories"]


def expected_pivot(categories: list[str]) -> pd.DataFrame:
    """The same table computed with pandas from the CSV."""
    purchases = pd.read_csv(PROJECT / "seeds/purchases.csv").fillna({"amount": 0})
    listed = purchases["category"].where(purchases["category"].isin(categories), "other")
    table = purchases.assign(column=listed).pivot_table(index="region", columns="column", values="amount", aggfunc="sum", fill_value=0)
    return pd.DataFrame({
        **{f"{SLUGS[category]}_amount": table.get(category, 0) for category in categories},
        "other_amount": table.get("other", 0),
    }).sort_index()


def table_columns(context, table: str) -> list[str]:
    return list(context.fetchdf(f"SELECT * FROM {table} LIMIT 0").columns)


def test_the_yaml_test_passes(built) -> None:
    result = built.test(stream=io.StringIO())
    assert result.testsRun == 1 and result.wasSuccessful(), [text for _, text in result.failures + result.errors]


def test_the_columns_are_the_configured_categories(built) -> None:
    amounts = [f"{SLUGS[category]}_amount" for category in configured_categories()]
    assert amounts == ["grocery_amount", "travel_amount", "dining_amount", "home_garden_amount"]
    assert table_columns(built, "analytics.spend_by_category") == ["region", *amounts, "other_amount", "total_amount", "purchases_without_amount"]


def test_the_values_match_a_pandas_pivot(built) -> None:
    actual = built.fetchdf("SELECT * FROM analytics.spend_by_category").set_index("region").sort_index().astype(float)
    expected = expected_pivot(configured_categories()).astype(float)
    pd.testing.assert_frame_equal(actual[expected.columns], expected, check_names=False)
    assert (actual["total_amount"] == expected.sum(axis=1)).all()
    assert actual["purchases_without_amount"].to_dict() == {"east": 0, "north": 0, "south": 1}


@pytest.mark.slow
def test_editing_the_variable_changes_the_columns_on_the_next_plan(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from sqlmesh import Context

    copy = tmp_path / "project"
    copy_project(PROJECT, copy)
    monkeypatch.chdir(copy)
    context = Context(paths=str(copy))
    context.plan(auto_apply=True, no_prompts=True)
    context.close()
    config = copy / "config.yaml"
    config.write_text(config.read_text().replace("[Grocery, Travel, Dining, Home & Garden]", "[Books, Grocery]"))
    context = Context(paths=str(copy))
    try:
        # skip_tests: the YAML test describes the committed configuration's columns
        context.plan(auto_apply=True, no_prompts=True, skip_tests=True)
        assert table_columns(context, "analytics.spend_by_category")[1:4] == ["books_amount", "grocery_amount", "other_amount"]
        actual = context.fetchdf("SELECT * FROM analytics.spend_by_category").set_index("region").sort_index().astype(float)
        expected = expected_pivot(["Books", "Grocery"]).astype(float)
        pd.testing.assert_frame_equal(actual[expected.columns], expected, check_names=False)
    finally:
        context.close()


def test_two_categories_with_one_column_name_are_refused_naming_the_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from sqlmesh import Context

    copy = tmp_path / "project"
    copy_project(PROJECT, copy, leave_out=("tests",))
    config = copy / "config.yaml"
    config.write_text(config.read_text().replace("[Grocery, Travel, Dining, Home & Garden]", "[Home & Garden, home-garden]"))
    monkeypatch.chdir(copy)
    with pytest.raises(Exception, match=r"variable pivot_categories: categories 'Home & Garden' and 'home-garden' would both be column home_garden_amount"):
        Context(paths=str(copy)).plan(auto_apply=True, no_prompts=True)
