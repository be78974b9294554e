"""Project SQL functions: definitions in ``sql/udfs/*.sql``, callable from every model.

A project keeps small SQL helpers in ``sql/udfs/*.sql``, written in the project's dialect::

    CREATE MACRO activity_level(transaction_count) AS
        CASE WHEN transaction_count > 50 THEN 'high_activity' ... END;

and models call them like built-in functions: ``activity_level(transaction_count)``. They
behave like ``@udf`` functions (see ``mixmesh.sqlmesh``):

- Loading reads the files (function definitions only) and stores, in the SQLMesh python_env
  of every model, audit or statement that calls one, its definition and those of the
  functions it calls (``__mixmesh_sql__<name>``, one line of SQL without comments). Editing a
  function changes the fingerprint of exactly its callers, and ``sqlmesh plan`` shows the old
  and the new definition; a project without ``sql/udfs`` stores nothing more.
- The stored value is ``definition(dialect, sql)`` of this module: re-creating it from
  SQLMesh's state imports mixmesh, which installs the hooks. ``sqlmesh run`` does not load
  the project (only its state), so this is how a fresh ``run`` gets them.
- Rendering turns a call into ``<name>__<digest>(...)``, the digest of the stored
  definition (and of those it calls): ``sqlmesh run`` uses the definitions that were
  planned, never the files, and two versions of a function never share a name.
- Right before the engine runs a statement that calls one, the engine creates it under that
  name (``engines.create_sql_functions``; DuckDB: a TEMP macro on the statement's cursor).

Longer than 450 lines because a project SQL function's life, from its file to the definition
each calling model stores, is one chain of checks that name the file and the line.
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import hashlib
import re
import threading
import typing as t
from pathlib import Path

from sqlglot import exp

from mixmesh.core.errors import FunctionDefinitionError
from mixmesh.core.names import keep_import_path

FOLDER = Path("sql", "udfs")
ENV_PREFIX = "__mixmesh_sql__"
DIGEST_CHARS = 10
KINDS = ("MACRO", "FUNCTION")  # DuckDB: CREATE FUNCTION is another spelling of CREATE MACRO
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_MISSING_AT = re.compile(r"from (?P<line>\d+):")


class SqlFunctionError(FunctionDefinitionError):
    """A project SQL function cannot be defined, called or created as written."""


@dataclasses.dataclass(frozen=True)
class SqlFunction:
    """A project SQL function: its name and ``CREATE`` statement, in the project's dialect."""

    name: str
    definition: exp.Create = dataclasses.field(compare=False)
    dialect: str
    location: t.Optional[str] = dataclasses.field(default=None, compare=False)  # "sql/udfs/a.sql:3"

    @functools.cached_property
    def sql(self) -> str:
        """The definition as SQLMesh stores it: one line, no comments."""
        return self.definition.sql(self.dialect, comments=False)

    @functools.cached_property
    def calls(self) -> t.FrozenSet[str]:
        """Names of the functions sqlglot does not know that the body calls."""
        return frozenset(node.name.lower() for node in self.definition.expression.find_all(exp.Anonymous))

    def stored(self) -> "Definition":
        """What a caller's python_env holds: the dialect and the definition."""
        return definition(self.dialect, self.sql)

    def renamed(self, engine_name: str, engine_names: t.Mapping[str, str]) -> exp.Create:
        """The definition under its engine-side name, calling the others by theirs."""
        definition = self.definition.copy()
        definition.this.set("this", exp.to_table(engine_name))
        rename_calls(definition.expression, engine_names)
        return definition

    def describe(self) -> str:
        return f"SQL function {self.name!r}" + (f" ({self.location})" if self.location else "")


class Definition(t.Dict[str, str]):
    """A stored definition (``dialect``, ``sql``), written in SQLMesh's state as the call that
    re-creates it, so that re-creating it imports mixmesh."""

    def __repr__(self) -> str:
        # The path projects' states hold (see mixmesh.core.names), whichever module defines it.
        return f"__import__('mixmesh.sql_functions').sql_functions.definition({self['dialect']!r}, {self['sql']!r})"


def definition(dialect: str, sql: str) -> Definition:
    """The value ``__mixmesh_sql__<name>`` holds in a python_env (see ``Definition``)."""
    return Definition(dialect=dialect, sql=sql)


# --- reading sql/udfs -------------------------------------------------------------------------


def read_project(root: Path, files: t.Iterable[Path], dialect: str) -> t.Dict[str, SqlFunction]:
    """Every function the files define, checked: unique names, no cycle."""
    functions: t.Dict[str, SqlFunction] = {}
    for path in sorted(files):
        for function in read_file(path, root, dialect):
            other = functions.get(function.name)
            if other is not None:
                raise SqlFunctionError(
                    f"{function.location}: the SQL function {function.name!r} is already defined "
                    f"at {other.location}; give one of them another name"
                )
            functions[function.name] = function
    for function in functions.values():
        _check_not_recursive(function, functions)
    return functions


def read_file(path: Path, root: Path, dialect: str) -> t.List[SqlFunction]:
    """The functions one file defines; anything else in it is refused."""
    relative = path.relative_to(root).as_posix() if path.is_relative_to(root) else str(path)
    return [
        _function(statement, dialect, f"{relative}:{line}")
        for line, statement in _statements(path.read_text(encoding="utf-8"), dialect, relative)
    ]


def _statements(text: str, dialect: str, relative: str) -> t.Iterator[t.Tuple[int, exp.Expr]]:
    """Each statement of a file, with the line it starts on; syntax errors name file and line."""
    from sqlglot.dialects.dialect import Dialect
    from sqlglot.errors import ErrorLevel, ParseError, TokenError
    from sqlglot.tokens import TokenType

    engine = Dialect.get_or_raise(dialect)
    try:
        tokens = engine.tokenize(text)
    except TokenError as error:
        cause = str(error.__cause__ or error)
        found = _MISSING_AT.search(cause)
        at = f"{relative}:{found.group('line')}" if found else relative
        raise SqlFunctionError(f"{at}: syntax error: {cause}") from None
    statement: t.List[t.Any] = []
    for token in [*tokens, None]:
        if token is not None and token.token_type != TokenType.SEMICOLON:
            statement.append(token)
            continue
        if statement:
            try:
                parser = _quiet_parser(engine.parser_class)(dialect=engine, error_level=ErrorLevel.RAISE)
                parsed = [e for e in parser.parse(statement, text) if e]
            except ParseError as error:
                first = error.errors[0] if error.errors else {}
                line = first.get("line") or statement[0].line
                source = text.splitlines()[line - 1].strip() if 0 < line <= len(text.splitlines()) else ""
                description = first.get("description") or str(error)
                raise SqlFunctionError(
                    f"{relative}:{line}: syntax error: {description}" + (f"\n    {source}" if source else "")
                ) from None
            for expression in parsed:
                yield statement[0].line, expression
        statement = []


@functools.lru_cache(maxsize=None)
def _quiet_parser(parser_class: type) -> type:
    """The dialect's parser without the console warning for statements it reads as a mere
    command (SQLMesh prints one): mixmesh refuses those with its own, precise message."""
    return type(f"Quiet{parser_class.__name__}", (parser_class,), {"_warn_unsupported": lambda self: None})


def _function(statement: exp.Expr, dialect: str, location: str) -> SqlFunction:
    """A definition checked and made canonical (no OR REPLACE, no TEMP, name in lower case)."""
    udf = statement.this if isinstance(statement, exp.Create) else None
    kind = str(statement.args.get("kind") or "").upper() if isinstance(statement, exp.Create) else ""
    if isinstance(statement, exp.Command) and _looks_like_definition(statement):
        raise SqlFunctionError(
            f"{location}: sqlglot cannot read this function definition ({_excerpt(statement, dialect)}); "
            "write the body in parentheses (AS (...)); default parameter values and overloads are "
            "not supported"
        )
    if kind not in KINDS or not isinstance(udf, exp.UserDefinedFunction) or statement.expression is None:
        raise SqlFunctionError(
            f"{location}: {FOLDER.as_posix()}/ holds function definitions only "
            f"(CREATE MACRO name(args) AS ...); refused {_kind_of(statement)}: {_excerpt(statement, dialect)}"
        )
    target = udf.this
    if not isinstance(target, exp.Table) or target.args.get("db") or target.args.get("catalog"):
        raise SqlFunctionError(
            f"{location}: {target.sql(dialect)}: a project SQL function has a plain name, without "
            "a schema (mixmesh creates it for each session that runs a model)"
        )
    name = _check_name(target.name, location, dialect)
    _check_reads_no_table(statement.expression, name, location, dialect)
    canonical = statement.copy()
    canonical.set("replace", False)
    canonical.set("exists", False)
    canonical.this.set("this", exp.to_table(name))
    properties = canonical.args.get("properties")
    if properties is not None:
        kept = [p for p in properties.expressions if not isinstance(p, exp.TemporaryProperty)]
        canonical.set("properties", exp.Properties(expressions=kept) if kept else None)
    return SqlFunction(name=name, definition=canonical, dialect=dialect, location=location)


def _looks_like_definition(command: exp.Command) -> bool:
    rest = command.args.get("expression")
    words = f"{command.this} {rest.sql() if isinstance(rest, exp.Expr) else rest or ''}".upper().split()
    words = [w for w in words if w not in ("OR", "REPLACE", "TEMP", "TEMPORARY")]
    return words[:1] == ["CREATE"] and words[1:2] in (["MACRO"], ["FUNCTION"])


def _kind_of(statement: exp.Expr) -> str:
    """``a CREATE TABLE statement``, ``a DROP MACRO statement``, ``an INSERT statement``."""
    if isinstance(statement, exp.Command):
        words = str(statement.this).upper()
    else:
        kind = statement.args.get("kind") if isinstance(statement, (exp.Create, exp.Drop)) else None
        words = " ".join(w for w in (statement.key.upper(), str(kind or "").upper()) if w)
    return f"{'an' if words[:1] in 'AEIOU' else 'a'} {words} statement"


def _excerpt(statement: exp.Expr, dialect: str, limit: int = 100) -> str:
    text = " ".join(statement.sql(dialect, comments=False).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _check_name(name: str, location: str, dialect: str) -> str:
    from mixmesh.core.functions import _sql_builtin_names

    if not _NAME.match(name):
        raise SqlFunctionError(
            f"{location}: {name!r} is not a valid function name (letters, digits and underscores, "
            "not starting with a digit)"
        )
    if name.upper() in _sql_builtin_names() or name.upper() in _builtin_names(dialect):
        raise SqlFunctionError(
            f"{location}: {name!r} is a SQL built-in function; models calling it would get the "
            "built-in one. Give the project function another name"
        )
    return name.lower()


@functools.lru_cache(maxsize=None)
def _builtin_names(dialect: str) -> t.FrozenSet[str]:
    from sqlglot.dialects.dialect import Dialect

    parser = Dialect.get_or_raise(dialect).parser_class
    return frozenset(n.upper() for n in [*parser.FUNCTIONS, *parser.FUNCTION_PARSERS])


def _check_reads_no_table(body: exp.Expr, name: str, location: str, dialect: str) -> None:
    """A function's body may not read tables: SQLMesh would not see the dependency, so it
    would neither order the models nor read the environment's own version of the table."""
    ctes = {cte.alias_or_name.lower() for cte in body.find_all(exp.CTE)}
    for table in body.find_all(exp.Table):
        if isinstance(table.this, exp.Identifier) and table.name.lower() not in ctes:
            raise SqlFunctionError(
                f"{location}: SQL function {name!r} reads the table {table.sql(dialect)}; SQLMesh "
                "cannot see a dependency hidden in a function. Pass the values as arguments, or "
                "join the table in the model"
            )


def _check_not_recursive(function: SqlFunction, functions: t.Mapping[str, SqlFunction]) -> None:
    def visit(name: str, path: t.Tuple[str, ...]) -> None:
        for callee in sorted(functions[name].calls & functions.keys()):
            if callee == function.name:
                chain = " -> ".join((*path, callee))
                raise SqlFunctionError(
                    f"{function.location}: SQL function {function.name!r} calls itself ({chain}); "
                    "SQL functions cannot be recursive"
                )
            if callee not in path:
                visit(callee, (*path, callee))

    visit(function.name, (function.name,))


# --- which project, at load time ----------------------------------------------------------------

# Project root -> its functions, set when SQLMesh loads the project (before it forks workers).
_projects: t.Dict[Path, t.Dict[str, SqlFunction]] = {}
_read_cache: t.Dict[Path, t.Tuple[t.Any, t.Dict[str, SqlFunction]]] = {}
_lock = threading.Lock()


def project_files(loader: t.Any) -> t.List[Path]:
    """The ``sql/udfs/**/*.sql`` files of the project a SQLMesh loader loads."""
    folder = Path(loader.config_path) / FOLDER
    if not folder.is_dir():
        return []
    return list(loader._glob_paths(folder, ignore_patterns=loader.config.ignore_patterns, extension=".sql"))


def load_project(root: Path, files: t.Sequence[Path], dialect: str) -> t.Dict[str, SqlFunction]:
    """Read (or reuse) the project's functions and make them the ones its models may call."""
    root = root.resolve()
    if not files:
        with _lock:
            _projects.pop(root, None)
        return {}
    stats = [(str(p), p.stat().st_mtime_ns, p.stat().st_size) for p in sorted(files)]
    key = (dialect, stats)
    with _lock:
        cached = _read_cache.get(root)
    functions = cached[1] if cached and cached[0] == key else read_project(root, files, dialect)
    with _lock:
        _read_cache[root] = (key, functions)
        _projects[root] = functions
    return functions


def functions_for(path: t.Any) -> t.Dict[str, SqlFunction]:
    """The functions of the loaded project a file or folder belongs to (none if no project)."""
    if not _projects or not path:
        return {}
    try:
        target = Path(path).resolve()
    except (OSError, TypeError, ValueError):
        return {}
    for root, functions in _projects.items():
        if target == root or target.is_relative_to(root):
            return functions
    return {}


# --- what a model carries -----------------------------------------------------------------------


def stored_entries(
    expressions: t.Sequence[t.Tuple[exp.Expr, bool]],
    functions: t.Mapping[str, SqlFunction],
    where: t.Any = None,
    dialect: t.Any = None,
) -> t.Dict[str, t.Tuple[Definition, bool]]:
    """What a model stores for the functions its expressions call, and their callees:
    ``__mixmesh_sql__<name>`` -> (the definition, whether only metadata calls it). A function
    called only from metadata (audits) is stored as metadata, as SQLMesh stores macros."""
    used: t.Dict[str, bool] = {}
    shadowed = sorted(n for n in functions if isinstance(dialect, str) and n.upper() in _builtin_names(dialect))
    for expression, is_metadata in expressions:
        for node in expression.find_all(exp.Anonymous):
            name = node.name.lower()
            if name in functions:
                used[name] = used.get(name, True) and bool(is_metadata)
        if shadowed:
            _check_not_shadowed(expression, [functions[n] for n in shadowed], where, dialect)
    return {
        ENV_PREFIX + name: (functions[name].stored(), is_metadata)
        for name, is_metadata in sorted(with_callees(used, functions).items())
    }


def _check_not_shadowed(expression: exp.Expr, shadowed: t.List[SqlFunction], where: t.Any, dialect: str) -> None:
    """A model whose dialect reads a project function's name as one of its own built-ins
    would silently call the built-in (sqlglot translates it for the engine)."""
    text = expression.sql(dialect).lower()
    for function in shadowed:
        if re.search(rf"\b{re.escape(function.name)}\s*\(", text):
            raise SqlFunctionError(
                f"{where or 'a model'}: {function.name}(...) is a built-in function of {dialect} SQL, "
                f"the model's dialect, so the call would not reach the project's {function.describe()}; "
                "give the project function another name"
            )


def with_callees(used: t.Mapping[str, bool], functions: t.Mapping[str, SqlFunction]) -> t.Dict[str, bool]:
    """``used`` (name -> metadata only) and the project functions they call, at any depth."""
    closure = dict(used)
    pending = list(closure)
    while pending:
        name = pending.pop()
        for callee in functions[name].calls & functions.keys():
            is_metadata = closure.get(callee, True) and closure[name]
            if closure.get(callee) != is_metadata:
                closure[callee] = is_metadata
                pending.append(callee)
    return closure


def called_in_code(code: t.Any, functions: t.Mapping[str, SqlFunction]) -> t.Dict[str, Definition]:
    """The stored definitions of the functions Python code calls in its SQL strings.

    Python does not see a call written in a string (``context.sql("... activity_level(n)")``, a
    SQLMesh macro returning SQL); the function is stored with the code as a global value.
    """
    from mixmesh.core.introspection import string_constants

    if not functions or code is None:
        return {}
    text = " ".join(string_constants(code)).lower()
    used = {name: False for name in functions if re.search(rf"\b{re.escape(name)}\s*\(", text)}
    return {ENV_PREFIX + name: functions[name].stored() for name in sorted(with_callees(used, functions))}


# --- rendering ----------------------------------------------------------------------------------


def stored_functions(entries: t.Mapping[str, t.Any]) -> t.Dict[str, SqlFunction]:
    """The functions a python_env (Executables) or a Python model's globals (values) holds."""
    functions = {}
    for key, value in entries.items():
        if not key.startswith(ENV_PREFIX):
            continue
        stored = _payload_definition(value.payload) if hasattr(value, "payload") else value
        if isinstance(stored, dict):
            functions[key[len(ENV_PREFIX) :]] = _from_state(key[len(ENV_PREFIX) :], stored["dialect"], stored["sql"])
    return functions


@functools.lru_cache(maxsize=1024)
def _payload_definition(payload: str) -> t.Optional[Definition]:
    """The arguments of a stored ``...definition(dialect, sql)`` call, read without running it."""
    call = ast.parse(payload, mode="eval").body
    if not isinstance(call, ast.Call) or len(call.args) != 2:
        return None
    return definition(*(ast.literal_eval(arg) for arg in call.args))


@functools.lru_cache(maxsize=1024)
def _from_state(name: str, dialect: str, sql: str) -> SqlFunction:
    import sqlglot

    return SqlFunction(name=name, definition=sqlglot.parse_one(sql, read=dialect), dialect=dialect)


def engine_names(functions: t.Mapping[str, SqlFunction]) -> t.Dict[str, str]:
    """Engine-side names: ``<name>__<digest>`` of the definition and of those it calls."""
    digests: t.Dict[str, str] = {}

    def digest(name: str, path: t.Tuple[str, ...]) -> str:
        if name not in digests:
            function = functions[name]
            sha = hashlib.sha256(f"{function.dialect}\n{function.sql}".encode())
            for callee in sorted(function.calls & functions.keys()):
                if callee not in path:
                    sha.update(f"\n{callee}={digest(callee, (*path, callee))}".encode())
            digests[name] = sha.hexdigest()
        return digests[name]

    return {name: f"{name}__{digest(name, (name,))[:DIGEST_CHARS]}" for name in sorted(functions)}


def rename_calls(expression: exp.Expr, engine_names: t.Mapping[str, str]) -> exp.Expr:
    """Calls of the functions become calls of their engine-side names (in place)."""
    for node in expression.find_all(exp.Anonymous):
        engine_name = engine_names.get(node.name.lower())
        if engine_name is not None:
            node.set("this", engine_name)
    return expression


def loaded_functions() -> t.Dict[str, SqlFunction]:
    """The functions of every project loaded in this process (by name)."""
    with _lock:
        return {name: f for functions in _projects.values() for name, f in functions.items()}


def any_loaded() -> bool:
    return bool(_projects)


# Public names keep the path projects import them from (see mixmesh.core.names).
keep_import_path(globals(), "mixmesh.sql_functions")
