"""Compiling mixmesh's per-row work into a copy of the user's function.

Engines that call Python once per row (DuckDB's native UDFs) pay for every Python frame:
a wrapper around the user's function costs about a fifth of the whole call. So, where the
function's source is known, mixmesh compiles a copy of it with the wrapper's work written
into its body instead: a NULL guard at the top, a ``try`` around the body that names the
row in any error (free in CPython until something raises), and, at each ``return``, the
conversion the engine needs (NaN as text, or a ``ResultCheck``: a test that lets the common
value through inline, and a conversion for the others). The copy shares the function's
globals, defaults and file name, so helpers, recursion and tracebacks behave as before.

Where that cannot be done exactly (no source, a closure, a generator...), ``compile_row_call``
returns None and the caller uses a plain wrapper.
"""

from __future__ import annotations

import ast
import copy
import inspect
import textwrap
import typing as t

_PREFIX = "__mixmesh_"
_FAILURE = _PREFIX + "failure"
_ERROR = _PREFIX + "error"
_ROW = _PREFIX + "row"
_RESULT = _PREFIX + "result"
_CONVERT = _PREFIX + "convert"
_PASSES = _PREFIX + "passes"
_CAUGHT = _PREFIX + "caught"


class ResultCheck(t.NamedTuple):
    """What a row call does with the value the function returns.

    ``test``: a Python expression over ``RESULT`` (the value) and ``names``, true where the
    value goes to the engine as it is; it is compiled into the call, so that the common value
    costs no Python frame. Any other value becomes ``convert(value, row)``. The copy converts
    at the function's own ``return`` statements, inside its ``try`` blocks: so ``convert``
    refuses a value by raising ``passes``, a ``BaseException`` that the function's own
    ``except Exception`` does not catch, holding the error to raise (which names the row
    already) as its first argument; the copy raises that error (only a bare ``except:``
    in the function would catch it first). ``names`` must start with ``__mixmesh_``.
    """

    test: str
    names: t.Mapping[str, t.Any]
    convert: t.Callable[[t.Any, t.Tuple[t.Any, ...]], t.Any]
    passes: t.Type[BaseException]


RESULT = _RESULT  # the name a ResultCheck's test reads the value by


def compile_row_call(
    func: t.Callable[..., t.Any],
    source: t.Optional[str],
    failure: t.Callable[[Exception, t.Tuple[t.Any, ...]], Exception],
    *,
    keep_nan: bool,
    skip_nulls: bool,
    result: t.Optional[ResultCheck] = None,
) -> t.Optional[t.Callable[..., t.Any]]:
    """A copy of ``func`` doing the per-row work itself, or None where that is not exact.

    ``result``, when given, replaces ``keep_nan``: each returned value goes through it.
    """
    if not _compilable(func):
        return None
    node = _function_node(func, source)
    if node is None:
        return None
    params = [arg.arg for arg in node.args.posonlyargs + node.args.args]
    if len(params) != func.__code__.co_argcount or node.args.vararg or node.args.kwarg:
        return None
    _strip_hints_and_decorators(node)
    reassigned = bool(_assigned_names(node.body) & set(params))
    row = ast.Tuple([ast.Name(p, ast.Load()) for p in params], ast.Load()) if params else None
    body: t.List[ast.stmt] = []
    if skip_nulls and params:
        body.append(_null_guard(params))
    if reassigned:  # the error must show the row as it came, not as the body changed it
        body.append(ast.Assign([ast.Name(_ROW, ast.Store())], row))
        row = ast.Name(_ROW, ast.Load())
    rewriter = _ReturnRewriter(keep_nan, result, row)
    original: t.List[ast.stmt] = []
    for statement in node.body:
        rewritten = rewriter.visit(statement)
        original.extend(rewritten if isinstance(rewritten, list) else [rewritten])
    body.append(_guarded(original, row, passes=result is not None))
    node.body = body
    return _build(func, node, failure, result)


def _compilable(func: t.Callable[..., t.Any]) -> bool:
    return (
        inspect.isfunction(func)
        and not func.__closure__
        and not (inspect.isgeneratorfunction(func) or inspect.iscoroutinefunction(func))
        and not inspect.isasyncgenfunction(func)
    )


def _function_node(func: t.Callable[..., t.Any], source: t.Optional[str]) -> t.Optional[ast.FunctionDef]:
    offset = 0
    if source is None:
        try:
            source = inspect.getsource(func)
        except (OSError, TypeError):
            return None
        offset = func.__code__.co_firstlineno - 1
    try:
        module = ast.parse(textwrap.dedent(source))
    except SyntaxError:
        return None
    for node in module.body:
        if isinstance(node, ast.FunctionDef) and node.name == func.__name__:
            ast.increment_lineno(node, offset)
            return node
    return None


def _strip_hints_and_decorators(node: ast.FunctionDef) -> None:
    # Hints would be evaluated again when the copy is defined; they play no part in a call.
    node.decorator_list = []
    node.returns = None
    for arg in node.args.posonlyargs + node.args.args + node.args.kwonlyargs:
        arg.annotation = None


def _null_guard(params: t.List[str]) -> ast.stmt:
    checks = [ast.Compare(ast.Name(p, ast.Load()), [ast.Is()], [ast.Constant(None)]) for p in params]
    test = checks[0] if len(checks) == 1 else ast.BoolOp(ast.Or(), checks)
    return ast.If(test, [ast.Return(ast.Constant(None))], [])


def _guarded(body: t.List[ast.stmt], row: t.Optional[ast.expr], passes: bool) -> ast.stmt:
    """``try: body`` / ``except caught as e: raise failure(e, row) from e`` (exceptions, and
    sys.exit or KeyboardInterrupt: ``values.CAUGHT``); with ``passes``,
    first ``except passes as e: raise e.args[0] from None``: a refused result's error (which
    names the row already) goes out as it is."""
    failure = ast.Call(
        ast.Name(_FAILURE, ast.Load()),
        [ast.Name(_ERROR, ast.Load()), row or ast.Tuple([], ast.Load())],
        [],
    )
    handler = ast.ExceptHandler(
        ast.Name(_CAUGHT, ast.Load()), _ERROR, [ast.Raise(failure, ast.Name(_ERROR, ast.Load()))]
    )
    handlers = []
    if passes:  # except passes as e: raise e.args[0] from None
        held = ast.Subscript(
            ast.Attribute(ast.Name(_ERROR, ast.Load()), "args", ast.Load()), ast.Constant(0), ast.Load()
        )
        handlers.append(ast.ExceptHandler(ast.Name(_PASSES, ast.Load()), _ERROR, [ast.Raise(held, ast.Constant(None))]))
    return ast.Try(body or [ast.Pass()], handlers + [handler], [], [])


class _ReturnRewriter(ast.NodeTransformer):
    """Rewrites the function's own ``return x`` (not those of nested functions)."""

    def __init__(self, keep_nan: bool, result: t.Optional[ResultCheck], row: t.Optional[ast.expr]) -> None:
        self.keep_nan = keep_nan
        self.result = result
        self.row = row

    def visit_Return(self, node: ast.Return) -> t.Union[ast.stmt, t.List[ast.stmt]]:
        if node.value is None:
            return node
        if self.result is not None:
            return self._checked(node)
        if not self.keep_nan:
            return node
        # return r if (r := x) == r else 'NaN': NaN is the one value unequal to itself.
        named = ast.NamedExpr(ast.Name(_RESULT, ast.Store()), node.value)
        test = ast.Compare(named, [ast.Eq()], [ast.Name(_RESULT, ast.Load())])
        return ast.copy_location(
            ast.Return(ast.IfExp(test, ast.Name(_RESULT, ast.Load()), ast.Constant("NaN"))), node
        )

    def _checked(self, node: ast.Return) -> t.List[ast.stmt]:
        """``r = x`` / ``if <test>: return r`` / ``return convert(r, row)``."""
        assert self.result is not None
        value = ast.Name(_RESULT, ast.Load())
        test = ast.parse(self.result.test, mode="eval").body
        row = copy.deepcopy(self.row) if self.row is not None else ast.Tuple([], ast.Load())
        converted = ast.Call(ast.Name(_CONVERT, ast.Load()), [value, row], [])
        statements = [
            ast.Assign([ast.Name(_RESULT, ast.Store())], node.value),
            ast.If(test, [ast.Return(ast.Name(_RESULT, ast.Load()))], []),
            ast.Return(converted),
        ]
        return [ast.copy_location(statement, node) for statement in statements]

    def _keep(self, node: ast.AST) -> ast.AST:
        return node  # a nested scope: its returns are not the function's

    visit_FunctionDef = visit_AsyncFunctionDef = visit_Lambda = visit_ClassDef = _keep  # type: ignore[assignment]


def _assigned_names(body: t.List[ast.stmt]) -> t.Set[str]:
    """Names the function's own scope binds (assignments, loops, with, except, imports...)."""
    names: t.Set[str] = set()
    stack: t.List[ast.AST] = list(body)
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
            continue
        if isinstance(node, ast.Lambda):
            continue
        if isinstance(node, ast.Name) and isinstance(node.ctx, (ast.Store, ast.Del)):
            names.add(node.id)
        elif isinstance(node, ast.ExceptHandler) and node.name:
            names.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((alias.asname or alias.name).split(".")[0] for alias in node.names)
        stack.extend(ast.iter_child_nodes(node))
    return names


def _build(
    func: t.Callable[..., t.Any],
    node: ast.FunctionDef,
    failure: t.Callable[..., Exception],
    result: t.Optional[ResultCheck] = None,
) -> t.Optional[t.Callable[..., t.Any]]:
    """Define the copy inside a factory, so ``failure`` (and what ``result`` uses) are closure
    cells, not globals."""
    cells: t.Dict[str, t.Any] = {_FAILURE: failure, _CAUGHT: (Exception, SystemExit, KeyboardInterrupt)}
    if result is not None:
        if not all(name.startswith(_PREFIX) for name in result.names):
            return None
        cells.update(result.names)
        cells.update({_CONVERT: result.convert, _PASSES: result.passes})
    factory = ast.FunctionDef(
        name=_PREFIX + "factory",
        args=ast.arguments([], [ast.arg(name) for name in cells], None, [], [], None, []),
        body=[node, ast.Return(ast.Name(node.name, ast.Load()))],
        decorator_list=[],
        returns=None,
    )
    if "type_params" in ast.FunctionDef._fields:  # Python 3.12+
        factory.type_params = []
    module = ast.fix_missing_locations(ast.Module([factory], []))
    try:
        code = compile(module, func.__code__.co_filename, "exec")
    except (SyntaxError, ValueError):
        return None
    scope: t.Dict[str, t.Any] = {}
    exec(code, func.__globals__, scope)  # globals are the function's own: helpers resolve alike
    inlined = scope[_PREFIX + "factory"](*cells.values())
    inlined.__defaults__ = func.__defaults__
    inlined.__kwdefaults__ = func.__kwdefaults__
    inlined.__qualname__ = func.__qualname__
    return inlined
