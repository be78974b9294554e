"""Columns generated from the project's configuration: one per category in the
``pivot_categories`` variable (config.yaml), known when SQLMesh renders the model.

SQLMesh creates a model's table at plan time from its rendered query, so the columns must be
known then: they come from configuration, not from the rows a run will read.
"""

from __future__ import annotations

import re

from sqlglot import exp
from sqlmesh import macro

VARIABLE = "pivot_categories"


def column_slug(category: str) -> str:
    """A column name for a category: "Home & Garden" -> "home_garden"."""
    return "_".join(re.findall(r"[a-z0-9]+", category.casefold()))


def pivot_slugs(categories: list[str]) -> list[str]:
    """The slug of each category; a ValueError naming the variable for an unusable list."""
    if not categories or not all(isinstance(category, str) for category in categories):
        raise ValueError(f"variable {VARIABLE} must list category names (config.yaml), got {categories!r}")
    slugs = [column_slug(category) for category in categories]
    seen: dict[str, str] = {}
    for category, slug in zip(categories, slugs):
        if not slug:
            raise ValueError(f"variable {VARIABLE}: category {category!r} has no letters or digits to name a column")
        if slug in seen:
            raise ValueError(f"variable {VARIABLE}: categories {seen[slug]!r} and {category!r} would both be column {slug}_amount")
        seen[slug] = category
    return slugs


@macro()
def category_amounts(evaluator, category_column: exp.Expression, amount_column: exp.Expression) -> list[exp.Expression]:
    """SUM(CASE WHEN category = '<name>' THEN amount ELSE 0 END) AS <slug>_amount per listed
    category, then other_amount for the categories not listed."""
    # The name written out: SQLMesh finds the variables a model uses by reading its macros'
    # evaluator.var("...") calls, and passes (and fingerprints) only those.
    categories = evaluator.var("pivot_categories")
    slugs = pivot_slugs(categories)
    names = [exp.Literal.string(category) for category in categories]
    columns = [
        exp.alias_(exp.Sum(this=exp.case().when(exp.EQ(this=category_column.copy(), expression=name), amount_column.copy()).else_(exp.Literal.number(0))), f"{slug}_amount")
        for name, slug in zip(names, slugs)
    ]
    listed = exp.In(this=category_column.copy(), expressions=names)
    other = exp.case().when(exp.Not(this=listed), amount_column.copy()).else_(exp.Literal.number(0))
    return [*columns, exp.alias_(exp.Sum(this=other), "other_amount")]
