"""Spec text -> ``Graph``: the ``.sbp`` language of SPEC.md §1, read with ``ast``.

Nothing in a spec is executed or evaluated: the parser walks the syntax tree and accepts
only the constructs the language lists, building IR nodes through ``symbp.ops``. Every
problem is a ``SpecError`` located at the offending construct.
"""

from __future__ import annotations

import ast
import math
import re
from pathlib import Path

import sympy

from . import elementwise as ew
from . import ops
from .elementwise import X
from .errors import SpecError
from .ir import Decl, Graph, Node

Value = "Node | sympy.Expr"  # a node, or a number not yet placed in the graph

DECLARATIONS = ("Input", "Param", "Loss", "Output")
INITIALIZERS = {"zeros": 0, "ones": 0, "glorot": 0, "he": 0, "normal": 1, "uniform": 2}
REDUCTIONS = ("sum", "mean", "logsumexp", "softmax", "log_softmax")
BINOPS = {
    ast.Add: ops.add, ast.Sub: ops.sub, ast.Mult: ops.mul, ast.Div: ops.div,
    ast.Pow: ops.power, ast.MatMult: ops.matmul,
}
SYMBOLS = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.Pow: "**",
           ast.MatMult: "@"}
STATEMENT_NAMES = {
    ast.For: "a for loop", ast.While: "a while loop", ast.If: "an if statement",
    ast.Import: "an import", ast.ImportFrom: "an import", ast.AugAssign: "augmented assignment",
    ast.ClassDef: "a class", ast.With: "a with statement", ast.Return: "return outside a def",
    ast.Delete: "del", ast.Global: "global", ast.Nonlocal: "nonlocal", ast.Try: "try",
    ast.Raise: "raise", ast.Assert: "assert", ast.AsyncFunctionDef: "an async def",
    ast.Pass: "pass", ast.Break: "break", ast.Continue: "continue",
}


def parse(path: str | Path) -> Graph:
    """Parse the spec file at ``path``."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise SpecError(f"cannot read spec: {e.strerror}", str(path), 0, 0) from None
    return parse_bytes(data, str(path), path.stem)


def parse_bytes(data: bytes, filename: str = "<spec>", name: str | None = None) -> Graph:
    try:
        source = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        col = e.start - (data.rfind(b"\n", 0, e.start) + 1) + 1
        raise SpecError(
            f"the spec is not valid UTF-8 (byte 0x{data[e.start]:02x})", filename, line, col
        ) from None
    return parse_text(source, filename, name)


def parse_text(source: str, filename: str = "<spec>", name: str | None = None) -> Graph:
    """Parse spec ``source``; ``filename`` is used in error messages and generated code."""
    if name is None:
        name = Path(filename).stem if filename != "<spec>" else "spec"
    return _Parser(source, filename, name).run()


def _lines(source: str) -> list[str]:
    return re.split(r"\r\n|\r|\n", source)


class _Parser:
    def __init__(self, source: str, filename: str, name: str) -> None:
        self.source = source
        self.filename = filename
        self.lines = _lines(source)
        self.graph = Graph(name=name, source=source, filename=filename)
        self.values: dict[str, tuple[Value, int]] = {}  # bound names -> (value, line)
        self.functions: dict[str, tuple[int, sympy.Expr, int]] = {}  # name -> (arity, body, line)
        self.later: dict[str, int] = {}  # every name bound at top level -> its line

    # ----------------------------------------------------------------- errors

    def error(self, where: ast.AST | tuple[int, int], message: str) -> SpecError:
        if isinstance(where, tuple):
            line, col = where
        else:
            line = getattr(where, "lineno", 1)
            text = self.lines[line - 1] if 0 < line <= len(self.lines) else ""
            offset = getattr(where, "col_offset", 0)
            col = len(text.encode("utf-8")[:offset].decode("utf-8", "replace")) + 1
        text = self.lines[line - 1] if 0 < line <= len(self.lines) else ""
        return SpecError(message, self.filename, line, col, text)

    # ------------------------------------------------------------- statements

    def run(self) -> Graph:
        if "\x00" in self.source:
            line = self.source[: self.source.index("\x00")].count("\n") + 1
            raise self.error((line, 1), "the spec contains a NUL byte")
        try:
            tree = ast.parse(self.source, self.filename)
        except SyntaxError as e:
            line = e.lineno or 1
            raise self.error((line, e.offset or 1), f"syntax error: {e.msg}") from None
        except (RecursionError, MemoryError):
            raise self.error((1, 1), "the spec is nested too deeply to parse") from None
        for stmt in tree.body:
            for target in self._bound_names(stmt):
                self.later.setdefault(target, stmt.lineno)
        for stmt in tree.body:
            try:
                self.statement(stmt)
            except RecursionError:
                raise self.error(stmt, "expression nested too deeply") from None
        if self.graph.loss is None:
            last = max(len(self.lines) - (self.lines[-1] == ""), 1)
            raise self.error((last, 1), "the spec has no Loss: declare one as `C: Loss = ...`")
        return self.graph

    @staticmethod
    def _bound_names(stmt: ast.stmt) -> list[str]:
        if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name):
            return [stmt.target.id]
        if isinstance(stmt, ast.Assign):
            return [t.id for t in stmt.targets if isinstance(t, ast.Name)]
        return []

    def statement(self, stmt: ast.stmt) -> None:
        if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant):
            if isinstance(stmt.value.value, str):
                return  # a docstring
        if isinstance(stmt, ast.FunctionDef):
            return self.function(stmt)
        if isinstance(stmt, ast.AnnAssign):
            return self.declaration(stmt)
        if isinstance(stmt, ast.Assign):
            if len(stmt.targets) != 1:
                raise self.error(stmt, "bind one name per equation (no chained `a = b = ...`)")
            target = self.target(stmt.targets[0])
            value = self.expr(stmt.value)
            return self.bind(target, value, stmt)
        what = STATEMENT_NAMES.get(type(stmt), f"a {type(stmt).__name__} statement")
        if isinstance(stmt, ast.Expr):
            what = "an expression statement (bind it to a name)"
        raise self.error(stmt, f"unsupported construct: {what}")

    def target(self, t: ast.expr) -> str:
        if not isinstance(t, ast.Name):
            raise self.error(t, "only a plain name can be bound")
        name = t.id
        if name in self.values:
            raise self.error(t, f"'{name}' is already bound at line {self.values[name][1]}")
        if name in self.functions:
            raise self.error(t, f"'{name}' is already a function (line {self.functions[name][2]})")
        return name

    def bind(self, name: str, value: Value, stmt: ast.stmt) -> Node:
        node = self.as_node(value)
        self.values[name] = (node, stmt.lineno)
        self.graph.names.setdefault(node, name)
        self.graph.equations.append((name, node, stmt.lineno))
        segment = ast.get_source_segment(self.source, stmt) or ""
        self.graph.statements[stmt.lineno] = " ".join(segment.split())
        self._mark_lines(node, stmt.lineno)
        return node

    def _mark_lines(self, root: Node, line: int) -> None:
        lines = self.graph.lines
        stack = [root]
        while stack:
            node = stack.pop()
            if node in lines or node.op.name in ("INPUT", "PARAM"):
                continue
            lines[node] = line
            stack.extend(node.args)

    def declaration(self, stmt: ast.AnnAssign) -> None:
        name = self.target(stmt.target)
        ann = stmt.annotation
        kind, dims = ann, None
        if isinstance(ann, ast.Subscript):
            kind = ann.value
            dims = ann.slice
        if not isinstance(kind, ast.Name) or kind.id not in DECLARATIONS:
            raise self.error(ann, "unknown annotation: expected Input[...], Param[...], Loss "
                             "or Output")
        kind = kind.id
        if kind in ("Input", "Param"):
            shape = self.shape(dims, kind)
            if kind == "Input":
                if stmt.value is not None:
                    raise self.error(stmt.value, "an Input takes no value")
                node = ops.input_node(name, shape)
                self.graph.inputs[name] = Decl(node, stmt.lineno)
            else:
                if stmt.value is None:
                    raise self.error(stmt, f"Param '{name}' needs an initializer, e.g. "
                                     f"`{name}: Param[...] = zeros`")
                init = self.initializer(stmt.value)
                node = ops.param_node(name, shape)
                self.graph.params[name] = Decl(node, stmt.lineno, init)
            self.values[name] = (node, stmt.lineno)
            return
        if dims is not None:
            raise self.error(ann, f"{kind} takes no shape: its shape is its expression's")
        if stmt.value is None:
            raise self.error(stmt, f"{kind} '{name}' needs an expression: `{name}: {kind} = ...`")
        value = self.expr(stmt.value)
        node = self.bind(name, value, stmt)
        if kind == "Output":
            self.graph.outputs[name] = node
            return
        if self.graph.loss is not None:
            first = self.values[self.graph.loss_name][1]
            raise self.error(stmt, f"a second Loss: the spec already has '{self.graph.loss_name}'"
                             f" at line {first}")
        if node.shape != ():
            raise self.error(stmt.value, f"the Loss must be a scalar per example, got shape "
                             f"{node.shape}; reduce it with sum(...) or mean(...)")
        self.graph.loss = node
        self.graph.loss_name = name

    def shape(self, dims: ast.expr | None, kind: str) -> tuple[int, ...]:
        if dims is None:
            return ()
        elts = dims.elts if isinstance(dims, ast.Tuple) else [dims]
        shape = []
        for d in elts:
            ok = isinstance(d, ast.Constant) and type(d.value) is int and d.value > 0
            if not ok:
                raise self.error(d, f"{kind} dimensions must be positive integer literals")
            if d.value > ops.MAX_ELEMENTS:
                raise self.error(d, f"dimension {d.value} is too large (at most "
                                 f"{ops.MAX_ELEMENTS})")
            shape.append(d.value)
        if math.prod(shape) > ops.MAX_ELEMENTS:
            raise self.error(dims, f"{kind} of shape {tuple(shape)} has more than "
                             f"{ops.MAX_ELEMENTS} elements")
        return tuple(shape)

    def initializer(self, e: ast.expr) -> tuple:
        number = self.literal(e)
        if number is not None:
            return ("const", number)
        if isinstance(e, ast.Name) and INITIALIZERS.get(e.id) == 0:
            return (e.id,)
        if isinstance(e, ast.Call) and isinstance(e.func, ast.Name) and e.func.id in INITIALIZERS:
            arity = INITIALIZERS[e.func.id]
            args = [self.literal(a) for a in e.args]
            if arity == 0 or e.keywords or len(args) != arity or None in args:
                usage = {"normal": "normal(std)", "uniform": "uniform(low, high)"}
                raise self.error(e, f"bad initializer: use {usage.get(e.func.id, e.func.id)}"
                                 " with number literals")
            if e.func.id == "normal" and args[0] < 0:
                raise self.error(e, "bad initializer: normal(std) needs std >= 0")
            if e.func.id == "uniform" and not args[0] <= args[1]:
                raise self.error(e, "bad initializer: uniform(low, high) needs low <= high")
            return (e.func.id, *args)
        raise self.error(e, "bad initializer: expected a number, zeros, ones, normal(std), "
                         "uniform(low, high), glorot or he")

    def literal(self, e: ast.expr) -> float | None:
        """A (signed) number literal as a float, or None if ``e`` is not one."""
        sign = 1
        while isinstance(e, ast.UnaryOp) and isinstance(e.op, (ast.USub, ast.UAdd)):
            sign *= -1 if isinstance(e.op, ast.USub) else 1
            e = e.operand
        if isinstance(e, ast.Constant) and type(e.value) in (int, float):
            value = float(e.value) * sign
            if not math.isfinite(value):
                raise self.error(e, "number is too large for a float")
            return value
        return None

    # -------------------------------------------------------------- functions

    def function(self, f: ast.FunctionDef) -> None:
        name = f.name
        if name in ew.BUILTINS or name in REDUCTIONS or name == "cross_entropy":
            raise self.error(f, f"cannot redefine the built-in function '{name}'")
        if name in self.functions or name in self.values:
            raise self.error(f, f"'{name}' is already defined")
        a = f.args
        if a.vararg or a.kwarg or a.kwonlyargs or a.defaults or a.kw_defaults:
            raise self.error(f, "function parameters must be plain names (no defaults, "
                             "*args or **kwargs)")
        if f.decorator_list:
            raise self.error(f.decorator_list[0], "decorators are not supported")
        params = [p.arg for p in a.posonlyargs + a.args]
        if not params:
            raise self.error(f, f"function '{name}' needs at least one parameter")
        if len(set(params)) != len(params):
            raise self.error(f, f"function '{name}' repeats a parameter name")
        body = list(f.body)
        if (len(body) > 1 and isinstance(body[0], ast.Expr)
                and isinstance(body[0].value, ast.Constant)
                and isinstance(body[0].value.value, str)):
            body = body[1:]
        if len(body) != 1 or not isinstance(body[0], ast.Return) or body[0].value is None:
            raise self.error(f, f"function '{name}' must be a single `return <expression>`")
        env = {p: X[i] for i, p in enumerate(params)}
        expr = self.scalar_expr(body[0].value, env, name)
        if expr.has(sympy.zoo, sympy.nan, sympy.oo):
            raise self.error(body[0].value, f"function '{name}' has a non-finite constant")
        self.functions[name] = (len(params), expr, f.lineno)
        self.graph.functions[name] = (len(params), expr)

    def scalar_expr(self, e: ast.expr, env: dict[str, sympy.Symbol], fname: str) -> sympy.Expr:
        """A user function body: elementwise arithmetic of its parameters, as sympy."""
        if isinstance(e, ast.Constant):
            return self.number(e)
        if isinstance(e, ast.Name):
            if e.id in env:
                return env[e.id]
            raise self.error(e, f"unknown name '{e.id}' in function '{fname}': a function "
                             "sees only its parameters")
        if isinstance(e, ast.UnaryOp) and isinstance(e.op, (ast.USub, ast.UAdd)):
            inner = self.scalar_expr(e.operand, env, fname)
            return -inner if isinstance(e.op, ast.USub) else inner
        if isinstance(e, ast.BinOp) and type(e.op) in BINOPS and not isinstance(e.op, ast.MatMult):
            left = self.scalar_expr(e.left, env, fname)
            right = self.scalar_expr(e.right, env, fname)
            return {ast.Add: lambda: left + right, ast.Sub: lambda: left - right,
                    ast.Mult: lambda: left * right, ast.Div: lambda: left / right,
                    ast.Pow: lambda: left**right}[type(e.op)]()
        if isinstance(e, ast.Call) and isinstance(e.func, ast.Name):
            callee = e.func.id
            if e.keywords or any(isinstance(a, ast.Starred) for a in e.args):
                raise self.error(e, f"'{callee}' takes positional arguments only here")
            args = [self.scalar_expr(a, env, fname) for a in e.args]
            if callee in ew.BUILTINS:
                self.arity(e, callee, 1)
                return ew.BUILTINS[callee](args[0])
            if callee in self.functions:
                arity, body, _ = self.functions[callee]
                self.arity(e, callee, arity)
                return body.xreplace({X[i]: a for i, a in enumerate(args)})
            raise self.error(e, f"function bodies are elementwise: '{callee}' cannot be "
                             "called here")
        raise self.error(e, f"unsupported in a function body: {self.describe(e)}")

    # ------------------------------------------------------------ expressions

    def number(self, e: ast.Constant) -> sympy.Expr:
        v = e.value
        if type(v) not in (int, float):
            raise self.error(e, f"unsupported literal {self.describe(e)}: only numbers")
        if not math.isfinite(float(v)):
            raise self.error(e, "number is too large for a float")
        return ew.number(v)

    def as_node(self, v: Value) -> Node:
        return v if isinstance(v, Node) else ops.const(v)

    def describe(self, e: ast.AST) -> str:
        seg = ast.get_source_segment(self.source, e)
        kind = type(e).__name__
        return f"{kind} `{seg}`" if seg and len(seg) < 60 else kind

    def arity(self, e: ast.Call, name: str, n: int) -> None:
        if len(e.args) != n:
            plural = "" if n == 1 else "s"
            raise self.error(e, f"{name}() takes {n} argument{plural}, got {len(e.args)}")

    def expr(self, e: ast.expr) -> Value:
        try:
            return self._expr(e)
        except ops.GraphError as err:
            raise self.error(e, str(err)) from None

    def _expr(self, e: ast.expr) -> Value:
        if isinstance(e, ast.Constant):
            return self.number(e)
        if isinstance(e, ast.Name):
            return self.name(e)
        if isinstance(e, ast.UnaryOp) and isinstance(e.op, (ast.USub, ast.UAdd)):
            v = self.expr(e.operand)
            if isinstance(e.op, ast.UAdd):
                return v
            return -v if not isinstance(v, Node) else ops.neg(v)
        if isinstance(e, ast.BinOp) and type(e.op) in BINOPS:
            left, right = self.expr(e.left), self.expr(e.right)
            if not isinstance(left, Node) and not isinstance(right, Node):
                if isinstance(e.op, ast.MatMult):
                    raise self.error(e, "matmul of two numbers")
                value = ops.elementwise(
                    {ast.Add: X[0] + X[1], ast.Sub: X[0] - X[1], ast.Mult: X[0] * X[1],
                     ast.Div: X[0] / X[1], ast.Pow: X[0] ** X[1]}[type(e.op)],
                    (ops.const(left), ops.const(right)), SYMBOLS[type(e.op)])
                return value.attr
            return BINOPS[type(e.op)](self.as_node(left), self.as_node(right))
        if isinstance(e, ast.Attribute):
            if e.attr != "T":
                raise self.error(e, f"unsupported attribute '.{e.attr}': only .T (transpose)")
            v = self.expr(e.value)
            return ops.transpose(v) if isinstance(v, Node) else v
        if isinstance(e, ast.Call):
            return self.call(e)
        what = self.describe(e)
        if isinstance(e, ast.BinOp):
            what = f"the operator {type(e.op).__name__}"
        raise self.error(e, f"unsupported expression: {what}")

    def name(self, e: ast.Name) -> Value:
        if e.id in self.values:
            return self.values[e.id][0]
        if e.id in self.later:
            raise self.error(e, f"'{e.id}' is used before it is defined (at line "
                             f"{self.later[e.id]})")
        if e.id in self.functions or e.id in ew.BUILTINS:
            raise self.error(e, f"'{e.id}' is a function: call it, e.g. {e.id}(z)")
        raise self.error(e, f"unknown name '{e.id}'")

    def call(self, e: ast.Call) -> Value:
        if not isinstance(e.func, ast.Name):
            raise self.error(e.func, "only functions called by name are supported")
        name = e.func.id
        if any(isinstance(a, ast.Starred) for a in e.args):
            raise self.error(e, "*args in calls are not supported")
        axis_kw = [k for k in e.keywords if k.arg == "axis"]
        other_kw = [k for k in e.keywords if k.arg != "axis"]
        if other_kw or (axis_kw and name not in REDUCTIONS):
            bad = other_kw[0] if other_kw else axis_kw[0]
            raise self.error(bad.value, f"{name}() takes no keyword '{bad.arg}'")
        if name in ew.BUILTINS:
            self.arity(e, name, 1)
            return ops.apply(name, self.as_node(self.expr(e.args[0])))
        if name in REDUCTIONS:
            self.arity(e, name, 1)
            x = self.as_node(self.expr(e.args[0]))
            axis = self.axis(axis_kw[0].value) if axis_kw else None
            if name == "sum":
                return ops.reduce_sum(x, axis)
            if name == "mean":
                return ops.mean(x, axis)
            if name == "logsumexp":
                return ops.logsumexp(x, axis)
            if x.ndim == 0:
                raise self.error(e, f"{name}() needs a tensor of rank 1 or more, got a scalar")
            f = ops.softmax if name == "softmax" else ops.log_softmax
            return f(x, -1 if axis is None else axis)
        if name == "cross_entropy":
            self.arity(e, name, 2)
            logits, target = (self.as_node(self.expr(a)) for a in e.args)
            if logits.ndim == 0:
                raise self.error(e, "cross_entropy() needs vectors of logits and targets")
            return ops.cross_entropy(logits, target)
        if name in self.functions:
            arity, body, _ = self.functions[name]
            self.arity(e, name, arity)
            args = [self.as_node(self.expr(a)) for a in e.args]
            return ops.elementwise(body, args, name)
        if name in self.values:
            raise self.error(e.func, f"'{name}' is a value, not a function")
        if name in INITIALIZERS:
            raise self.error(e.func, f"'{name}' is an initializer: use it as a Param's value")
        raise self.error(e.func, f"unknown function '{name}'")

    def axis(self, e: ast.expr):
        items = e.elts if isinstance(e, ast.Tuple) else [e]
        axes = []
        for item in items:
            v = self.literal(item)
            if v is None or v != int(v) or isinstance(item, ast.Constant) and type(item.value) is float:
                raise self.error(item, "axis must be an integer literal or a tuple of them")
            axes.append(int(v))
        return tuple(axes) if isinstance(e, ast.Tuple) else axes[0]
