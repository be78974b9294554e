"""The README and the documentation site's pages (docs/*.md) say what is true.

Every Python, SQL and YAML block is either run by a test here (marked ``<!-- run: NAME -->``)
or marked a fragment with its reason (``<!-- fragment: ... -->``); every block parses; the
commands of shell blocks exist, with their options; and the counts and names the pages state
about the commands and the example project match them. See tests/readme_blocks.py.
"""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
import typing as t
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from tests.projects import Project, forget_project_modules
from tests.readme_blocks import DOCUMENTS, EXECUTABLE, ROOT, SHELL, Block, blocks, commands, named, stray_markers

DOCS = ROOT / "docs"
# The page on the seed document and its example project, which states the example's facts.
DOCUMENT_PAGE = (DOCS / "coming-from-the-document.md").read_text()
# Every page's text, for facts stated on whichever page the text moved to.
ALL_PAGES = "\n".join(document.read_text() for document in DOCUMENTS)
EXAMPLE = ROOT / "examples" / "customer_analytics"
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.S | re.M)
BLOCKS = blocks()

# The names of the blocks the tests below run: a block marked with a name not in this list
# (or a name here that no block carries) fails test_every_run_marker_names_a_test.
RUNS = (
    "opening-example",
    "document-call-site",
    "udf-modes",
    "functions-in-python-shared",
    "count-findings",
    "sql-functions",
    "python-model",
    "spark-gateway",
    "when-things-fail",
    "model-test",
    "yaml-test",
    "metrics-store",
    "otel-export",
    "calls-in-flight",  # run by tests/test_concurrency.py
    "dbt-null-handling",
)


def _params(selected: t.Iterable[Block]) -> t.List[t.Any]:
    return [pytest.param(block, id=block.where) for block in selected]


# --- every block is accounted for -----------------------------------------------------------


@pytest.mark.parametrize("block", _params(b for b in BLOCKS if b.language in EXECUTABLE))
def test_every_code_block_is_run_or_a_fragment_with_a_reason(block: Block) -> None:
    assert block.marker, (
        f"{block.where}: a {block.language} block without a marker; run it from tests/test_readme.py "
        "and mark it <!-- run: NAME --> on the line before the fence, or mark it "
        "<!-- fragment: why it does not run on its own -->"
    )
    kind, value = block.marker
    assert value, f"{block.where}: the {kind} marker gives no {'name' if kind == 'run' else 'reason'}"


@pytest.mark.parametrize("block", _params(b for b in BLOCKS if b.language == "python" and b.run_name))
def test_a_block_that_runs_leaves_nothing_out(block: Block) -> None:
    """`...` stands for code left out: such a block is a fragment, not one that runs."""
    nodes = ast.walk(ast.parse(block.code))
    elided = [node.lineno for node in nodes if isinstance(node, ast.Constant) and node.value is Ellipsis]
    assert elided == [], f"{block.where}: `...` on line(s) {elided} of a block marked to run"


def test_every_run_marker_names_a_test() -> None:
    marked = {block.run_name for block in BLOCKS if block.run_name}
    assert marked - set(RUNS) == set(), "blocks marked to run that no test runs"
    assert set(RUNS) - marked == set(), "tests for blocks that are no longer marked"


def test_markers_stand_right_before_a_fence() -> None:
    assert stray_markers() == []


def test_no_block_runs_in_another_language() -> None:
    """A typo in a fence's language would make a block skip every check."""
    known = {*EXECUTABLE, *SHELL, ""}
    assert [(b.where, b.language) for b in BLOCKS if b.language not in known] == []


# --- every block parses ---------------------------------------------------------------------


@pytest.mark.parametrize("block", _params(b for b in BLOCKS if b.language == "python"))
def test_every_python_block_parses(block: Block) -> None:
    ast.parse(block.code)


@pytest.mark.parametrize("block", _params(b for b in BLOCKS if b.language == "yaml"))
def test_every_yaml_block_parses(block: Block) -> None:
    YAML(typ="safe").load(block.code)


@pytest.mark.parametrize("block", _params(b for b in BLOCKS if b.language == "sql"))
def test_every_sql_block_parses_in_its_dialect(block: Block) -> None:
    """SQLMesh's parser, as it reads model files: a MODEL block's `dialect` applies to the rest."""
    from sqlmesh.core.dialect import parse

    assert parse(block.code, default_dialect="duckdb"), f"{block.where}: nothing parsed"


@pytest.mark.parametrize("block", _params(b for b in BLOCKS if b.excerpt_of))
def test_excerpts_are_the_file_s_lines(block: Block) -> None:
    """Each line of an excerpt is a line of the file, in the file's order (lines may be left out)."""
    remaining = iter(block.excerpt_of.read_text().splitlines())
    lines = [line for line in block.code.splitlines() if line.strip()]
    if lines[0].startswith("# ") and block.excerpt_of.name in lines[0]:
        lines = lines[1:]  # the comment naming the file
    for line in lines:
        assert any(candidate == line for candidate in remaining), (
            f"{block.where}: {line.strip()!r} is not in {block.excerpt_of.relative_to(ROOT)} (or not in that order)"
        )


# --- shell blocks name commands and options that exist --------------------------------------


def _makefile_targets() -> t.Set[str]:
    return set(re.findall(r"^([\w-]+):", (ROOT / "Makefile").read_text(), re.M))


def _extras() -> t.Set[str]:
    import tomllib

    return set(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"])


def _check_click(group: t.Any, words: t.List[str], program: str) -> None:
    """`program [group options] command [arguments and options]`, against a click group."""
    import click

    rest = words[1:]
    while rest and rest[0].startswith("-"):
        _check_option(group, rest.pop(0), program)
    if not rest:
        return
    command = group.commands.get(rest[0])
    assert isinstance(command, click.Command), (
        f"`{program} {rest[0]}`: no such command (it has {sorted(group.commands)})"
    )
    for word in rest[1:]:
        _check_option(command, word, f"{program} {rest[0]}")


def _check_option(command: t.Any, word: str, program: str) -> None:
    option = word.strip("[]").split("=")[0]
    if not option.startswith("-"):
        return
    known = {"--help"} | {name for param in command.params for name in (*param.opts, *param.secondary_opts)}
    assert option in known, f"`{program}` has no option {option} (it has {sorted(known)})"


def _check_command(words: t.List[str], made: t.Set[str]) -> None:
    program = words[0]
    if program == "mixmesh":
        from mixmesh.cli.main import main

        _check_click(main, words, "mixmesh")
        if words[1:2] == ["init"] and len(words) > 2:
            made.add(words[2])
    elif program == "sqlmesh":
        from sqlmesh.cli.main import cli

        _check_click(cli, words, "sqlmesh")
    elif program == "make":
        targets = _makefile_targets()
        assert set(words[1:]) <= targets, f"`{' '.join(words)}`: the Makefile has {sorted(targets)}"
    elif program == "cd":
        assert words[1] in made or (ROOT / words[1]).is_dir(), f"`cd {words[1]}`: no such folder"
    elif program == "pip" and words[1:2] == ["install"]:
        for requirement in words[2:]:
            extras = re.fullmatch(r"mixmesh\[([\w,]+)\]", requirement)
            if extras:
                known = _extras()
                assert set(extras.group(1).split(",")) <= known, f"`{requirement}`: mixmesh's extras are {sorted(known)}"
    elif program == "pytest":
        options = [word for word in words[1:] if word.startswith("-")]
        if options:
            text = subprocess.run([sys.executable, "-m", "pytest", "--help"], capture_output=True, text=True).stdout
            assert all(option.split("=")[0] in text for option in options), f"`{' '.join(words)}`: unknown option"
    else:
        raise AssertionError(f"no check for the command `{' '.join(words)}`: add one to tests/test_readme.py")


@pytest.mark.parametrize("block", _params(b for b in BLOCKS if b.language in SHELL or (not b.language and commands(b))))
def test_shell_commands_and_options_exist(block: Block) -> None:
    made: t.Set[str] = set()
    for words in commands(block):
        _check_command(words, made)


def _mixmesh(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    """The installed `mixmesh` command in a fresh process, as a reader runs it."""
    command = [str(Path(sys.executable).with_name("mixmesh")), *args]
    environment = {**os.environ, "NO_COLOR": "1"}
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, check=True, env=environment)


def test_the_cheap_commands_run(tmp_path: Path) -> None:
    from mixmesh.cli.main import main as cli
    from mixmesh.core.version import __version__

    helped = _mixmesh("--help").stdout
    assert all(name in helped for name in cli.commands)
    assert __version__ in _mixmesh("--version").stdout
    printed = _mixmesh("init", "my_project", cwd=tmp_path).stdout
    assert (tmp_path / "my_project" / "config.yaml").exists()
    # The block lists the next commands init prints.
    shown = next(b for b in BLOCKS if b.language in SHELL and "mixmesh init my_project" in b.code)
    for words in [words for words in commands(shown)[1:] if words[0] != "cd"]:
        assert " ".join(words) in printed, f"`mixmesh init` does not print `{' '.join(words)}`:\n{printed}"


# --- the blocks run -------------------------------------------------------------------------

RAW_TRANSACTIONS = """
MODEL (name raw.raw_transactions, kind FULL);
SELECT customer_id, amount::DOUBLE AS amount, merchant_category, transaction_time::TIMESTAMP AS transaction_time,
       payment_method
FROM (VALUES
    ('C1', 10, 'grocery', '2024-01-01 02:00:00', 'card'),
    ('C1', 20, 'gas', '2024-01-01 03:00:00', 'card'),
    ('C1', 30, 'grocery', '2024-01-01 10:00:00', 'cash'),
    ('C1', 40, 'travel', '2024-01-01 12:00:00', 'card'),
    ('C1', 50, 'dining', '2024-01-01 14:00:00', 'wallet'),
    ('C1', 60, 'grocery', '2024-01-01 16:00:00', 'card'),
    ('C2', 5, 'travel', '2024-01-01 03:00:00', 'card'),
    ('C2', 7, 'travel', '2024-01-01 04:00:00', 'card')
) AS t(customer_id, amount, merchant_category, transaction_time, payment_method)
"""

# What the opening example's model reads: each customer's transactions, as the document's SQL
# aggregates them.
CUSTOMER_TRANSACTIONS = """
MODEL (name analytics.customer_transactions, kind FULL);
SELECT customer_id,
       ARRAY_AGG({'amount': amount, 'merchant_category': merchant_category, 'transaction_time': transaction_time,
                  'payment_method': payment_method} ORDER BY transaction_time) AS transaction_details,
       SUM(amount) AS total_amount, COUNT(*) AS transaction_count
FROM raw.raw_transactions GROUP BY customer_id
"""

# The Python model block reads raw.transactions by date.
TRANSACTIONS = """
MODEL (name raw.transactions, kind FULL);
SELECT customer_id::INT AS customer_id, amount::DOUBLE AS amount, transaction_date::DATE AS transaction_date
FROM (VALUES (1, 10, '2024-01-01'), (1, 20, '2024-01-02'), (2, 5, '2024-01-02'), (2, 1000, '2024-01-05'))
    AS t(customer_id, amount, transaction_date)
"""

AMOUNTS = """
MODEL (name analytics.amounts, kind FULL);
SELECT * FROM (VALUES ('C1', [1.0, NULL, 2.0], 3.0), ('C2', [1.0, 2.0], 4.0)) AS t(customer_id, amounts, total)
"""

CHECKED = """
MODEL (name analytics.checked, kind FULL);
SELECT customer_id, @checked_total(amounts, total) AS python_total FROM analytics.amounts
"""

# Calls both functions of the SQL functions block, on each of their branches.
SQL_FUNCTIONS_CALLER = """
MODEL (name analytics.customer_risk_scoring, kind FULL);
SELECT customer_id, activity_level(transaction_count) AS activity,
       safe_ratio(total_amount, transaction_count - 2) AS per_extra_transaction
FROM analytics.customer_transactions
"""


@pytest.fixture(scope="module")
def documented(tmp_path_factory: pytest.TempPathFactory) -> t.Iterator[t.Tuple[Project, t.Dict[t.Any, int]]]:
    """One project holding the blocks that fit together, planned once: the opening example,
    the document's call site, the count example, the SQL functions and the Python model.
    Yields the project and the counts (`mixmesh.resilience.events()`) the plan made."""
    from mixmesh.resilience import events, reset_events

    sql, function = named("opening-example", ["sql", "python"])
    project = Project(tmp_path_factory.mktemp("documented") / "project")
    project.write("macros/risk.py", function)
    project.write("models/raw_transactions.sql", RAW_TRANSACTIONS)
    project.write("models/customer_transactions.sql", CUSTOMER_TRANSACTIONS)
    project.write("models/scored.sql", sql)
    (call_site,) = named("document-call-site", ["sql"])
    header = "MODEL (name analytics.document_call_site, kind FULL);\n"
    project.write("models/document_call_site.sql", header + call_site)
    (counting,) = named("count-findings", ["python"])
    project.write("macros/checks.py", counting)
    project.write("models/amounts.sql", AMOUNTS)
    project.write("models/checked.sql", CHECKED)
    (sql_functions,) = named("sql-functions", ["sql"])
    project.write("sql/udfs/risk_scoring_functions.sql", sql_functions)
    project.write("models/customer_risk_scoring.sql", SQL_FUNCTIONS_CALLER)
    (python_model,) = named("python-model", ["python"])
    project.write("models/customer_ltv_prediction.py", python_model)
    project.write("models/transactions.sql", TRANSACTIONS)
    reset_events()
    try:
        project.plan(execution_time="2024-01-03")  # the incremental model's days: 2024-01-01 and 02
    finally:
        # The tests read the database and the metrics only: the next project loads its own modules.
        project.close()
        forget_project_modules()
    yield project, events()


def test_the_opening_example_scores_with_the_python_function(documented) -> None:
    project, _ = documented
    # Night transactions (before 06:00) over all: C1 2 of 6, C2 2 of 2.
    assert project.query("SELECT customer_id, ml_risk_score FROM analytics.scored ORDER BY 1") == [
        ("C1", pytest.approx(2 / 6)),
        ("C2", 1.0),
    ]


def test_the_document_s_call_site_hands_the_function_dicts_with_datetimes(documented) -> None:
    """docs/functions.md: transaction_details arrives as a list of dicts with four keys and datetime
    values (the opening function reads `t["transaction_time"].hour`)."""
    project, _ = documented
    assert project.query("SELECT customer_id, ml_risk_score FROM analytics.document_call_site ORDER BY 1") == [
        ("C1", pytest.approx(2 / 6)),
        ("C2", 1.0),
    ]


def test_the_count_example_counts_in_a_model(documented) -> None:
    project, counted = documented
    totals = project.query("SELECT customer_id, python_total FROM analytics.checked ORDER BY 1")
    assert totals == [("C1", 3.0), ("C2", 3.0)]
    mismatches = {key: n for key, n in counted.items() if key[2] == "finding:amount_mismatches"}
    assert [(key[1], n) for key, n in mismatches.items()] == [("checked_total", 1)]
    assert all("checked" in str(key[0]) for key in mismatches)


def test_the_sql_functions_run_in_a_model(documented) -> None:
    project, _ = documented
    assert project.query("SELECT * FROM analytics.customer_risk_scoring ORDER BY 1") == [
        ("C1", "normal_activity", 210.0 / 4),
        ("C2", "low_activity", None),  # 2 - 2 transactions: NULLIF makes the ratio NULL
    ]


def test_the_python_model_predicts_from_its_interval(documented) -> None:
    project, _ = documented
    rows = project.query(
        "SELECT customer_id, prediction_date::VARCHAR, predicted_ltv FROM analytics.customer_ltv_prediction ORDER BY 1"
    )
    # 2024-01-01 to 2024-01-02 in one batch; the 2024-01-05 transaction is outside it.
    assert rows == [(1, "2024-01-02", 105.0), (2, "2024-01-02", 17.5)]


def test_the_metrics_store_block_reads_the_project_s_runs(documented, monkeypatch: pytest.MonkeyPatch) -> None:
    project, _ = documented
    monkeypatch.chdir(project.root)
    (code,) = named("metrics-store", ["python"])
    namespace: t.Dict[str, t.Any] = {}
    exec(compile(code, "docs/monitoring.md", "exec"), namespace)
    assert set(namespace["runs"]["model"]) == {"analytics.customer_risk_scoring"}
    assert {"python_risk_score", "checked_total"} <= set(namespace["functions"]["function"])


def test_the_otel_block_exports_the_runs_once(documented, monkeypatch: pytest.MonkeyPatch) -> None:
    project, _ = documented
    monkeypatch.chdir(project.root)
    (code,) = named("otel-export", ["python"])
    namespace: t.Dict[str, t.Any] = {}
    try:
        exec(compile(code, "docs/monitoring.md", "exec"), namespace)
    finally:
        if "provider" in namespace:
            namespace["provider"].shutdown()  # its last export, then the reader's thread stops
    assert namespace["done"].runs >= 6 and namespace["done"].last_ended_at is not None
    assert namespace["later"].runs == 0


UDF_MODES_CALLER = """
MODEL (name analytics.modes, kind FULL);
SELECT customer_id,
       @python_risk_score(transaction_details, total_amount, transaction_count) AS risk,
       @amount_doubled(total_amount) AS doubled,
       @risk_label(score) AS label
FROM (VALUES
    ('C1', [{'amount': 10.0, 'transaction_time': TIMESTAMP '2024-01-01 02:00:00'},
            {'amount': 30.0, 'transaction_time': TIMESTAMP '2024-01-01 12:00:00'}], 40.0::DOUBLE, 2, 0.9::DOUBLE),
    ('C2', [], 0.0::DOUBLE, 0, 0.1::DOUBLE),
    ('C3', [{'amount': 5.0, 'transaction_time': TIMESTAMP '2024-01-01 20:00:00'}], 5.0::DOUBLE, 1, NULL)
) AS t(customer_id, transaction_details, total_amount, transaction_count, score)
"""


def test_functions_in_python_shared_in_each_mode(project: Project) -> None:
    """The three modes' declarations, kept in python/shared/ and exposed by the macros/ import
    docs/functions.md shows (and the same import of the two others: SQLMesh sees the names macros/
    imports)."""
    (declarations,) = named("udf-modes", ["python"])
    (exposing,) = named("functions-in-python-shared", ["python"])
    project.write("python/shared/feature_engineering.py", declarations)
    others = "from python.shared.feature_engineering import amount_doubled, label_for  # noqa: F401\n"
    project.write("macros/functions.py", exposing + others)
    project.write("models/modes.sql", UDF_MODES_CALLER)
    project.plan()
    assert project.query("SELECT * FROM analytics.modes ORDER BY 1") == [
        ("C1", 0.5, 80.0, "high"),
        ("C2", 0.5, 0.0, "low"),  # no transactions: the neutral score
        ("C3", 0.0, 10.0, "unknown"),  # null_handling="call": the function saw the NULL
    ]


RULES = '''
class SimpleRiskModel:
    """Mean amount per transaction, over 1,000; a day of refunds only is an error."""

    def score(self, transaction_details, total_amount, transaction_count):
        if total_amount < 0:
            raise ValueError(f"refunds only: {total_amount}")
        return min(1.0, total_amount / transaction_count / 1000)


def rule_based_score(transaction_details, total_amount, transaction_count):
    return 1.0 if transaction_count > 10 else 0.0
'''

LTV = '''
from mixmesh import load_artifact

SPEND = "SELECT customer_id, SUM(amount) AS spend FROM raw.payments GROUP BY customer_id"


def predict_ltv(context):
    features = context.sql(SPEND).to_pandas()
    model = load_artifact("artifacts/ltv_model.joblib", pins="artifacts/SHA256SUMS")
    features["predicted_ltv"] = model.predict(features[["spend"]])
    return features[["customer_id", "predicted_ltv"]]


def rule_based_ltv(context, **kwargs):
    rows = context.sql(SPEND).to_pandas()
    rows["predicted_ltv"] = rows.pop("spend") * 2.0
    return rows


def in_smaller_batches(context, **kwargs):
    for batch in context.sql(SPEND).batches(rows=1_000):
        rows = batch.to_pandas()
        rows["predicted_ltv"] = rows.pop("spend") * 2.0
        yield rows


def from_cached_features(context, **kwargs):
    return context.sql("SELECT customer_id, predicted_ltv FROM analytics.customer_ltv_prediction").to_pandas()
'''

PAYMENTS = """
MODEL (name raw.payments, kind FULL);
SELECT * FROM (VALUES ('C1', 100.0::DOUBLE), ('C1', 50.0::DOUBLE), ('C2', 20.0::DOUBLE)) AS t(customer_id, amount)
"""

RISK = """
MODEL (name analytics.risk, kind FULL);
SELECT customer_id, @python_risk_score(transaction_details, total_amount, transaction_count) AS score
FROM (VALUES ('C1', [{'amount': 300.0::DOUBLE}], 300.0::DOUBLE, 1),
             ('C2', [{'amount': -20.0::DOUBLE}], -20.0::DOUBLE, 1))
    AS t(customer_id, transaction_details, total_amount, transaction_count)
"""


def test_when_things_fail_the_fallbacks_answer(project: Project) -> None:
    """No trained model in artifacts/: the risk model is the rules (counted as missing), a
    function that raises gets `on_error`'s answer, and the model's ArtifactError its fallback."""
    from mixmesh.resilience import events, reset_events
    from mixmesh.resources import artifact_events, reset_artifact_events

    functions, model = named("when-things-fail", ["python", "python"])
    project.write("macros/scoring.py", functions)
    project.write("models/customer_ltv_prediction.py", model)
    project.write("python/shared/rules.py", RULES)
    project.write("python/shared/ltv.py", LTV)
    project.write("models/payments.sql", PAYMENTS)
    project.write("models/risk.sql", RISK)
    reset_events()
    reset_artifact_events()
    project.plan()
    counted = events()
    assert project.query("SELECT * FROM analytics.risk ORDER BY 1") == [("C1", 0.3), ("C2", 0.0)]
    assert project.query("SELECT * FROM analytics.customer_ltv_prediction ORDER BY 1") == [("C1", 300.0), ("C2", 40.0)]
    assert counted.get(("analytics.risk", "python_risk_score", "fallbacks")) == 1
    assert counted.get(("analytics.customer_ltv_prediction", "model", "fallbacks")) == 1
    assert not any(key[2] == "retries" for key in counted), counted
    assert artifact_events().get("missing", 0) >= 2


def test_the_spark_gateway_is_a_sqlmesh_config() -> None:
    from sqlmesh.core.config import Config

    (block,) = named("spark-gateway", ["yaml"])
    config = Config.parse_obj(YAML(typ="safe").load(block))
    gateway = config.gateways[config.default_gateway]
    assert gateway.connection.type_ == "spark" and gateway.state_connection.type_ == "duckdb"
    assert gateway.connection.config["spark.sql.session.timeZone"] == "UTC"


@pytest.mark.slow
def test_the_model_test_block_passes_under_pytest_in_a_new_project(tmp_path: Path) -> None:
    """Pasted into a project `mixmesh init` made, run by pytest with the `mixmesh_project` fixture."""
    (code,) = named("model-test", ["python"])
    _mixmesh("init", "project", cwd=tmp_path)
    test_file = tmp_path / "project" / "tests" / "integration" / "test_from_readme.py"
    test_file.write_text(code)
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(test_file)],
        cwd=tmp_path / "project",
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0 and "1 passed" in result.stdout, result.stdout + result.stderr


def test_the_yaml_test_block_passes_in_the_example_project(tmp_path: Path) -> None:
    import io

    from mixmesh.cli.demo_project import copy_example
    from sqlmesh import Context

    (block,) = named("yaml-test", ["yaml"])
    copy_example(EXAMPLE, tmp_path / "example")
    path = tmp_path / "example" / "tests" / "test_from_readme.yaml"
    path.write_text(block)
    context = Context(paths=str(tmp_path / "example"))
    try:
        result = context.test(tests=[str(path)], stream=io.StringIO())
    finally:
        context.close()
        forget_project_modules()
    assert result.testsRun == 1
    assert result.wasSuccessful(), "\n".join(text for _, text in (*result.failures, *result.errors))


# --- what the pages state about the commands and the example -------------------------------


def test_the_commands_the_pages_list_are_the_cli_s() -> None:
    """Every page that lists the commands (the quickstart, the CLI reference) lists them all."""
    from mixmesh.cli.main import main as cli

    lists = re.findall(r"`mixmesh --help` lists the commands \(([^)]*)\)", ALL_PAGES)
    assert lists, "no page says which commands `mixmesh --help` lists"
    for listed in lists:
        assert sorted(re.findall(r"`(\w+)`", listed)) == sorted(cli.commands)


def _yaml_tests() -> int:
    return sum(len(YAML(typ="safe").load(path.read_text())) for path in (EXAMPLE / "tests").glob("test_*.yaml"))


def test_the_yaml_test_counts_the_readme_states() -> None:
    words = {"seven": 7, "eight": 8, "nine": 9, "ten": 10}
    stated = [int(n) for n in re.findall(r"SQLMesh unit tests: (\d+)", ALL_PAGES)]
    stated += [int(n) for n in re.findall(r"the (\d+) YAML tests", ALL_PAGES)]
    stated += [words[w] for w in re.findall(r"The example project's (\w+) show the patterns", ALL_PAGES)]
    assert len(stated) == 3 and set(stated) == {_yaml_tests()}


def test_every_file_of_the_example_s_layout_exists() -> None:
    section = DOCUMENT_PAGE[DOCUMENT_PAGE.index("## The seed document's example project"):DOCUMENT_PAGE.index("### The three models")]
    layout = FENCE.search(section).group(2)
    folder = ""
    for line in layout.splitlines():
        name = line.split()[0]
        if line.startswith("  ") and not line.startswith("   "):
            path = EXAMPLE / folder / name
        else:
            folder = name if name.endswith("/") else ""
            path = EXAMPLE / name
        if name.startswith("artifacts/") or "*" in name:
            continue
        assert path.exists(), f"docs/coming-from-the-document.md lists {path.relative_to(EXAMPLE)}, which does not exist"


@pytest.mark.slow
def test_what_the_readme_says_of_the_example_s_models_is_what_sqlmesh_reads() -> None:
    from sqlmesh import Context

    context = Context(paths=str(EXAMPLE))
    try:
        parents = sorted(p.split(".", 1)[1].replace('"', "") for p in context.get_model("analytics.customer_ltv_prediction").depends_on)
        personalization = context.get_model("analytics.real_time_personalization")
    finally:
        context.close()
    assert "so SQLMesh lists the model's parents as `raw.dim_customers` and `raw.raw_transactions`" in DOCUMENT_PAGE
    assert parents == ["raw.dim_customers", "raw.raw_transactions"]
    source = (EXAMPLE / "models" / "analytics" / "real_time_personalization.sql").read_text()
    assert "@start_dtntz" in source and "@start_dtntz`/`@end_dtntz`, the interval's UTC times" in DOCUMENT_PAGE
    assert "WHERE prev_event_time IS NOT NULL" not in personalization.query.sql()
    assert "the model aggregates every event of a session" in DOCUMENT_PAGE


def test_the_dbt_page_s_block_maps_null_handling_and_volatility_on_duckdb() -> None:
    """docs/coming-from-dbt.md: strict and "call" NULL handling, and a non-deterministic
    function called twice, on a plain DuckDB connection (the block asserts the rows)."""
    (code,) = named("dbt-null-handling", ["python"])
    namespace: t.Dict[str, t.Any] = {}
    exec(compile(code, "docs/coming-from-dbt.md", "exec"), namespace)
    assert [row[1:3] for row in namespace["rows"]] == [(False, False), (True, True), (None, False)]
