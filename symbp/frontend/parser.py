"""Spec text -> ``Graph``: the ``.sbp`` language of SPEC.md §1, read with ``ast``.

Nothing in a spec is executed or evaluated: the parser walks the syntax tree and accepts
only the constructs the language lists, building IR nodes through ``symbp.ops``. Every
problem is a ``SpecError`` located at the offending construct.

This is the general reader, and the reference. Large specs are read by the fast path of
``symbp.parse_shapes``, which parses each statement shape once and hands back to this reader
what it does not cover; on any problem the spec is read here from its start.
"""

from __future__ import annotations

import ast
import math
from pathlib import Path

from ..errors import SpecError
from ..ir import expr as ex
from ..ir import ops
from ..ir.expr import Expr, X, substitute, walk
from ..ir.functions import FUNCTIONS, SPEC_FUNCTIONS
from ..ir.graph import Decl, Graph
from ..ir.node import Node, Op, gc_paused
from .shapes import DECLARED, FALLBACK, read_by_shapes
from .source import SpecSource, split_lines

Value = "Node | Expr"  # a node, or a number not yet placed in the graph

DECLARATIONS = ("Input", "Param", "Loss", "Output")
INITIALIZERS = {"zeros": 0, "ones": 0, "glorot": 0, "he": 0, "normal": 1, "uniform": 2}
REDUCTIONS = ("sum", "mean", "logsumexp", "softmax", "log_softmax")
BINOPS = {
    ast.Add: ops.add,
    ast.Sub: ops.sub,
    ast.Mult: ops.mul,
    ast.Div: ops.div,
    ast.Pow: ops.power,
    ast.MatMult: ops.matmul,
}
MAX_FUNCTION_TERMS = 10_000  # a user def's size once the defs it calls are expanded


def parse(path: str | Path) -> Graph:
    """Parse the spec file at ``path``; an unreadable file is a ``SpecError`` too."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise SpecError(f"cannot read spec: {e.strerror}", str(path)) from None
    return parse_bytes(data, str(path), path.stem)


def parse_bytes(data: bytes, filename: str = "<spec>", name: str | None = None) -> Graph:
    """Parse a spec given as bytes, which must be UTF-8 (a leading BOM is allowed)."""
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        source = data.decode("utf-8")
    except UnicodeDecodeError as e:
        before = split_lines(data[: e.start].decode("utf-8"))
        line, col = len(before), len(before[-1]) + 1
        text = split_lines(data.decode("utf-8", "replace"))[line - 1]
        raise SpecError(
            f"the spec is not valid UTF-8 (byte 0x{data[e.start]:02x}); save it as UTF-8",
            filename,
            line,
            col,
            text,
        ) from None
    return parse_text(source, filename, name)


@gc_paused
def parse_text(source: str, filename: str = "<spec>", name: str | None = None) -> Graph:
    """Parse spec ``source``; ``filename`` is used in error messages and generated code."""
    if name is None:
        name = Path(filename).stem if filename != "<spec>" else "spec"
    source = source.removeprefix("\ufeff")
    try:  # the fast path: it gives up on any problem, which the general reader reports
        return read_by_shapes(_Parser(source, filename, name))
    except FALLBACK:
        return _Parser(source, filename, name).run()


class _Parser(SpecSource):
    """One reading of one spec: statements in order, each name bound once, into a Graph."""

    def __init__(self, source: str, filename: str, name: str) -> None:
        super().__init__(source, filename)
        self.graph = Graph(name=name, source=source, filename=filename)
        self.values: dict[str, tuple[Value, int]] = {}  # bound names -> (value, line)
        self.functions: dict[str, tuple[int, Expr, int]] = {}  # name -> (arity, body, line)
        self.terms: dict[str, tuple[int, list[int]]] = {}  # user function -> its size with
        # calls expanded, and the uses of each of its parameters
        self.later: dict[str, int] = {}  # every name bound at top level -> its line
        self.line = 0  # the line of the statement being read

    # ------------------------------------------------------------- statements

    def run(self) -> Graph:
        if "\x00" in self.source:
            line = next(i for i, text in enumerate(self.lines, 1) if "\x00" in text)
            col = self.lines[line - 1].index("\x00") + 1
            raise self.error((line, col), "the spec contains a NUL byte")
        tree = self.syntax_tree()
        for stmt in tree.body:
            for target in self._bound_names(stmt):
                self.later.setdefault(target, stmt.lineno)
        for stmt in tree.body:
            self.line = stmt.lineno
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
        if isinstance(stmt, ast.FunctionDef):
            return [stmt.name]
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
        raise self.error(stmt, f"unsupported construct: {self.describe_statement(stmt)}")

    def target(self, t: ast.expr) -> str:
        if not isinstance(t, ast.Name):
            raise self.error(t, "only a plain name can be bound")
        name = t.id
        if name in self.values:
            raise self.error(
                t,
                f"'{name}' is already bound at line {self.values[name][1]}: "
                "each name is bound once (pick a new name)",
            )
        if name in self.functions:
            raise self.error(
                t, f"'{name}' is already a function (defined at line {self.functions[name][2]})"
            )
        return name

    def bind(self, name: str, value: Value, stmt: ast.stmt) -> Node:
        node = self.as_node(value)
        self.bind_line(name, node, stmt.lineno, self.source_of(stmt))
        return node

    def bind_line(self, name: str, node: Node, line: int, text: str) -> None:
        """Bind ``name`` to ``node``, the value of the statement at ``line`` written ``text``."""
        self.values[name] = (node, line)
        graph = self.graph
        graph.names.setdefault(node, name)
        graph.equations.append((name, node, line))
        graph.statements[line] = " ".join(text.split())
        lines = graph.lines
        stack = [node]
        while stack:  # the line of every node the statement made
            node = stack.pop()
            if node in lines or node.op in DECLARED:
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
            raise self.error(
                ann, "unknown annotation: expected Input[...], Param[...], Loss or Output"
            )
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
                    raise self.error(
                        stmt,
                        f"Param '{name}' needs an initializer, e.g. `{name}: Param[...] = zeros`",
                    )
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
            raise self.error(
                stmt,
                f"a second Loss: the spec already has '{self.graph.loss_name}' at line {first}",
            )
        if node.shape != ():
            raise self.error(
                stmt.value,
                f"the Loss must be a scalar per example, got shape "
                f"{node.shape}; reduce it with sum(...) or mean(...)",
            )
        self.graph.loss = node
        self.graph.loss_name = name

    def shape(self, dims: ast.expr | None, kind: str) -> tuple[int, ...]:
        if dims is None:
            return ()
        elts = dims.elts if isinstance(dims, ast.Tuple) else [dims]
        if not elts:
            raise self.error(dims, f"an empty shape: a scalar {kind} is written without brackets")
        shape = []
        for d in elts:
            ok = isinstance(d, ast.Constant) and type(d.value) is int and d.value > 0
            if not ok:
                got = f", got {self.describe(d)}" if not isinstance(d, ast.Constant) else ""
                raise self.error(d, f"{kind} dimensions must be positive integer literals{got}")
            if d.value > ops.MAX_ELEMENTS:
                shown = d.value if d.value.bit_length() < 64 else "with so many digits"
                raise self.error(d, f"dimension {shown} is too large (at most {ops.MAX_ELEMENTS})")
            shape.append(d.value)
        if math.prod(shape) > ops.MAX_ELEMENTS:
            raise self.error(
                dims, f"{kind} of shape {tuple(shape)} has more than {ops.MAX_ELEMENTS} elements"
            )
        return tuple(shape)

    def initializer(self, e: ast.expr) -> tuple:
        number = self.literal(e)
        if number is not None:
            return ("const", number)
        if isinstance(e, ast.Name) and INITIALIZERS.get(e.id) == 0:
            return (e.id,)
        if isinstance(e, ast.Call) and isinstance(e.func, ast.Name) and e.func.id in INITIALIZERS:
            arity = INITIALIZERS[e.func.id]
            if arity == 0:
                raise self.error(
                    e, f"bad initializer: {e.func.id} takes no arguments, write `= {e.func.id}`"
                )
            args = [self.literal(a) for a in e.args]
            if e.keywords or len(args) != arity or None in args:
                usage = {"normal": "normal(std)", "uniform": "uniform(low, high)"}[e.func.id]
                raise self.error(e, f"bad initializer: use {usage} with number literals")
            args = [a + 0.0 for a in args]  # -0.0 is 0.0 (numpy's normal refuses a std of -0.0)
            if e.func.id == "normal" and args[0] < 0:
                raise self.error(e, "bad initializer: normal(std) needs std >= 0")
            if e.func.id == "normal" and not math.isfinite(args[0] * 64):
                raise self.error(
                    e, "bad initializer: normal(std) with so large a std draws infinite values"
                )
            if e.func.id == "uniform" and not args[0] <= args[1]:
                raise self.error(e, "bad initializer: uniform(low, high) needs low <= high")
            if e.func.id == "uniform" and not math.isfinite(args[1] - args[0]):
                raise self.error(
                    e, "bad initializer: uniform(low, high) needs high - low to be a finite number"
                )
            return (e.func.id, *args)
        raise self.error(
            e,
            "bad initializer: expected a number, zeros, ones, normal(std), "
            "uniform(low, high), glorot or he",
        )

    # -------------------------------------------------------------- functions

    def function(self, f: ast.FunctionDef) -> None:
        """A user ``def``: one ``return`` of elementwise arithmetic, kept as an ``Expr``."""
        name = f.name
        if name in SPEC_FUNCTIONS or name in REDUCTIONS or name == "cross_entropy":
            raise self.error(f, f"cannot redefine the built-in function '{name}'")
        if name in self.functions:
            raise self.error(f, f"'{name}' is already defined at line {self.functions[name][2]}")
        if name in self.values:
            raise self.error(f, f"'{name}' is already bound at line {self.values[name][1]}")
        a = f.args
        extra = [
            *a.defaults,
            *(d for d in a.kw_defaults if d is not None),
            a.vararg,
            a.kwarg,
            *a.kwonlyargs,
        ]
        extra = [x for x in extra if x is not None]
        if extra:
            raise self.error(
                extra[0],
                "function parameters must be plain names (no defaults, "
                "*args, **kwargs or keyword-only parameters)",
            )
        if f.decorator_list:
            raise self.error(f.decorator_list[0], "decorators are not supported")
        if f.returns is not None:
            raise self.error(f.returns, "return annotations are not supported")
        params = [p.arg for p in a.posonlyargs + a.args]
        if not params:
            raise self.error(f, f"function '{name}' needs at least one parameter")
        if len(set(params)) != len(params):
            raise self.error(f, f"function '{name}' repeats a parameter name")
        body = list(f.body)
        if (
            len(body) > 1
            and isinstance(body[0], ast.Expr)
            and isinstance(body[0].value, ast.Constant)
            and isinstance(body[0].value.value, str)
        ):
            body = body[1:]  # a docstring
        wrong = [s for s in body if not isinstance(s, ast.Return) or s.value is None]
        if wrong or len(body) > 1:
            where = wrong[0] if wrong else body[1]
            raise self.error(where, f"function '{name}' must be a single `return <expression>`")
        result = body[0].value
        terms, uses = self.expanded_size(result, params)
        if terms > MAX_FUNCTION_TERMS:
            raise self.error(
                result,
                f"function '{name}' is too large once the functions it "
                f"calls are expanded (more than {MAX_FUNCTION_TERMS} terms)",
            )
        env = {p: X[i] for i, p in enumerate(params)}
        expr = self.scalar_expr(result, env, name)
        if expr.bad:
            raise self.error(result, f"function '{name}' has a constant that is {expr.bad}")
        self.functions[name] = (len(params), expr, f.lineno)
        self.terms[name] = (terms, uses)
        self.graph.functions[name] = (len(params), expr)

    def expanded_size(self, e: ast.AST, params: list[str]) -> tuple[int, list[int]]:
        """The size of ``e`` with every user function call inlined, and how many times each
        of ``params`` occurs in it.

        A call's size is its function's, plus each argument's (less the parameter it
        replaces) as often as the function uses that parameter: a chain of functions each
        calling the last once grows linearly, as it should, while f1(u) = f0(f0(u)),
        f2(u) = f1(f1(u)), ... grow geometrically and are caught early.
        """
        if isinstance(e, ast.Name):
            return 1, [int(e.id == p) for p in params]
        if isinstance(e, ast.Call) and isinstance(e.func, ast.Name) and e.func.id in self.terms:
            size, uses = self.terms[e.func.id]
            args = [self.expanded_size(a, params) for a in e.args]
            size += sum(k * (s - 1) for k, (s, _) in zip(uses, args))
            inner = [sum(k * a[1][i] for k, a in zip(uses, args)) for i in range(len(params))]
            return size, inner
        size, uses = int(isinstance(e, ast.expr)), [0] * len(params)
        for child in ast.iter_child_nodes(e):
            s, u = self.expanded_size(child, params)
            size += s
            uses = [a + b for a, b in zip(uses, u)]
        return size, uses

    def scalar_expr(self, e: ast.expr, env: dict[str, Expr], fname: str) -> Expr:
        """A user function body: elementwise arithmetic of its parameters."""
        value = self._scalar_expr(e, env, fname)
        if value.is_number:
            self.check_constant(e, value)
        return value

    def _scalar_expr(self, e: ast.expr, env: dict[str, Expr], fname: str) -> Expr:
        if isinstance(e, ast.Constant):
            return self.number(e)
        if isinstance(e, ast.Name):
            if e.id in env:
                return env[e.id]
            raise self.error(
                e,
                f"unknown name '{e.id}' in function '{fname}': a function sees only its parameters",
            )
        if isinstance(e, ast.UnaryOp) and isinstance(e.op, (ast.USub, ast.UAdd)):
            inner = self.scalar_expr(e.operand, env, fname)
            return -inner if isinstance(e.op, ast.USub) else inner
        if isinstance(e, ast.BinOp) and type(e.op) in BINOPS and not isinstance(e.op, ast.MatMult):
            left = self.scalar_expr(e.left, env, fname)
            right = self.scalar_expr(e.right, env, fname)
            if isinstance(e.op, ast.Div):
                self.check_divisor(e, right)
            if isinstance(e.op, ast.Pow):
                self.check_power(e, left, right)
            return {
                ast.Pow: lambda: left**right,
                ast.Add: lambda: left + right,
                ast.Sub: lambda: left - right,
                ast.Mult: lambda: left * right,
                ast.Div: lambda: left / right,
            }[type(e.op)]()
        if isinstance(e, ast.Call) and isinstance(e.func, ast.Name):
            callee = e.func.id
            if e.keywords or any(isinstance(a, ast.Starred) for a in e.args):
                raise self.error(e, f"'{callee}' takes positional arguments only here")
            if callee in SPEC_FUNCTIONS:
                self.arity(e, callee, FUNCTIONS[callee].arity)
                return ex.call(callee, *(self.scalar_expr(a, env, fname) for a in e.args))
            if callee in self.functions:
                arity, body, _ = self.functions[callee]
                self.arity(e, callee, arity)
                args = [self.scalar_expr(a, env, fname) for a in e.args]
                return ex.substitute(body, dict(enumerate(args)))
            if callee == fname:
                raise self.error(e, f"function '{fname}' calls itself: recursion is not supported")
            if callee in REDUCTIONS or callee == "cross_entropy":
                raise self.error(
                    e,
                    f"function bodies are elementwise: '{callee}' reduces, "
                    "so it cannot be called here",
                )
            raise self.error(
                e,
                f"unknown function '{callee}' in function '{fname}'"
                f"{self.suggest(callee, [*SPEC_FUNCTIONS, *self.functions])}",
            )
        raise self.error(e, f"unsupported in a function body: {self.describe(e)}")

    def check_constant(self, e: ast.expr, value: Expr) -> None:
        """A constant the spec computes must be a finite real float (no exp(1000), sqrt(-1)).

        Arithmetic on numbers folds exactly where it stays small, else in floating point
        (``symbp.expr``), so 10**10**10 is found too large without being computed."""
        if value.bad:
            raise self.error(e, f"the constant `{self.segment(e)}` is {value.bad}")

    # ------------------------------------------------------------ expressions

    def number(self, e: ast.Constant) -> Expr:
        v = e.value
        if type(v) not in (int, float):
            raise self.error(e, f"unsupported literal `{self.segment(e)}`: only numbers")
        self.finite(e, v)
        return ex.decimal(v)

    def as_node(self, v: Value) -> Node:
        return v if isinstance(v, Node) else ops.const(v)

    def arity(self, e: ast.Call, name: str, n: int) -> None:
        if len(e.args) != n:
            plural = "" if n == 1 else "s"
            hint = ""
            if name in REDUCTIONS and len(e.args) == 2:
                hint = f"; pass the axis by keyword, {name}(e, axis=k)"
            raise self.error(e, f"{name}() takes {n} argument{plural}, got {len(e.args)}{hint}")

    def expr(self, e: ast.expr) -> Value:
        """The value of expression ``e``, with shape errors located at ``e``."""
        try:
            value = self._expr(e)
        except ops.GraphError as err:
            raise self.error(e, str(err)) from None
        return self.checked(e, value)

    def checked(self, e: ast.expr, value: Value) -> Value:
        """``value``, the value of ``e``, if it passes the check every value gets: a constant
        must be a finite real number."""
        if not isinstance(value, Node):
            self.check_constant(e, value)
        elif value.op is Op.CONST:
            self.check_constant(e, value.attr)
        return value

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
            # a left-nested chain (a + b + c + ... of a thousand terms) is read in a loop:
            # only its right operands recurse, so its length is no depth
            spine = [e]
            while isinstance(spine[-1].left, ast.BinOp) and type(spine[-1].left.op) in BINOPS:
                spine.append(spine[-1].left)
            value = self.expr(spine[-1].left)
            for node in reversed(spine[1:]):
                right = self.expr(node.right)
                try:
                    value = self.checked(node, self.binop(node, value, right))
                except ops.GraphError as err:
                    raise self.error(node, str(err)) from None
            return self.binop(e, value, self.expr(e.right))
        if isinstance(e, ast.Attribute):
            if e.attr != "T":
                raise self.error(e, f"unsupported attribute '.{e.attr}': only .T (transpose)")
            v = self.expr(e.value)
            return ops.transpose(v) if isinstance(v, Node) else v
        if isinstance(e, ast.Call):
            return self.call(e)
        raise self.error(e, f"unsupported expression: {self.describe(e)}")

    def check_divisor(self, e: ast.BinOp, divisor: Expr) -> None:
        """No division by 0, nor by a number whose reciprocal no float holds (2e-313): the
        quotient's derivative, 1/divisor, would be infinite."""
        if divisor == 0:
            raise self.error(e, f"division by zero in `{self.segment(e)}`")
        if divisor.op == "num" and (1 / divisor).bad:
            raise self.error(
                e,
                f"dividing by {float(divisor.value)!r} in `{self.segment(e)}`:"
                " its reciprocal is too large for a float",
            )

    def binop(self, e: ast.BinOp, left: Value, right: Value) -> Value:
        """``left <op> right``, the operands of ``e`` already read."""
        if isinstance(e.op, ast.Div):
            self.check_divisor(e, self.constant(right))
        if isinstance(e.op, ast.Pow):
            self.check_power(e, self.constant(left), self.constant(right))
        if not isinstance(left, Node) and not isinstance(right, Node):
            if isinstance(e.op, ast.MatMult):
                raise self.error(e, "matmul of two numbers")
            return {
                ast.Add: lambda: left + right,
                ast.Sub: lambda: left - right,
                ast.Mult: lambda: left * right,
                ast.Div: lambda: left / right,
                ast.Pow: lambda: left**right,
            }[type(e.op)]()
        return BINOPS[type(e.op)](self.as_node(left), self.as_node(right))

    def check_power(self, e: ast.expr, base: Expr, exponent: Expr) -> None:
        """``base ** exponent`` with an exponent that varies needs a base above 0: its
        derivative with respect to the exponent holds log(base) (0 ** u, (-2) ** u, and
        exp(-1000) ** u, whose base is 0 in floating point)."""
        if base.op == "num" and base.value <= 0 and not exponent.is_number:
            raise self.error(
                e,
                f"`{self.segment(e)}` raises {float(base.value):g} to a power "
                "that varies: the base of such a power must be above 0 (its "
                "derivative holds the log of the base)",
            )

    @staticmethod
    def constant(v: Value) -> Expr:
        """The number a value is, or a symbol standing for "not a constant"."""
        if not isinstance(v, Node):
            return v
        return v.attr if v.op is Op.CONST else X[0]

    def name(self, e: ast.Name) -> Value:
        if e.id in self.values:
            return self.values[e.id][0]
        if self.later.get(e.id) == self.line:
            raise self.error(e, f"'{e.id}' is used in its own definition")
        if e.id in self.later:
            raise self.error(
                e, f"'{e.id}' is used before it is defined (at line {self.later[e.id]})"
            )
        if e.id in self.functions or e.id in SPEC_FUNCTIONS or e.id in REDUCTIONS:
            raise self.error(e, f"'{e.id}' is a function: call it, e.g. {e.id}(z)")
        if e.id in INITIALIZERS:
            raise self.error(e, f"'{e.id}' is an initializer: use it as a Param's value")
        raise self.error(e, f"unknown name '{e.id}'{self.suggest(e.id, self.values)}")

    def call(self, e: ast.Call) -> Value:
        if not isinstance(e.func, ast.Name):
            what = "a method call" if isinstance(e.func, ast.Attribute) else "a call"
            raise self.error(
                e.func,
                f"unsupported expression: {what} `{self.segment(e)}`: "
                "only functions called by name are supported",
            )
        name = e.func.id
        starred = [a for a in e.args if isinstance(a, ast.Starred)]
        if starred or any(k.arg is None for k in e.keywords):
            where = starred[0] if starred else next(k for k in e.keywords if k.arg is None)
            raise self.error(where, "* and ** unpacking in calls are not supported")
        axis_kw = [k for k in e.keywords if k.arg == "axis"]
        other_kw = [k for k in e.keywords if k.arg != "axis"]
        if other_kw or (axis_kw and name not in REDUCTIONS) or len(axis_kw) > 1:
            bad = other_kw[0] if other_kw else axis_kw[-1]
            raise self.error(bad, f"{name}() takes no keyword argument '{bad.arg}'")
        if name in SPEC_FUNCTIONS:
            self.arity(e, name, FUNCTIONS[name].arity)
            args = [self.as_node(self.expr(a)) for a in e.args]
            if all(x.op is Op.CONST for x in args):  # say which constant fails, e.g. log(0)
                self.check_constant(e, ex.call(name, *(x.attr for x in args)))
            return ops.apply(name, *args)
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
            if all(a.op is Op.CONST for a in args):
                self.check_constant(e, ex.substitute(body, {i: a.attr for i, a in enumerate(args)}))
            elif any(a.op is Op.CONST for a in args):  # f(0, w) with u ** v in f: 0 ** w
                known = {i: a.attr for i, a in enumerate(args) if a.op is Op.CONST}
                for t in walk(substitute(body, known)):
                    if t.op == "pow":
                        self.check_power(e, *t.args)
            return ops.elementwise(body, args, name)
        if name in self.values:
            raise self.error(e.func, f"'{name}' is a value, not a function")
        if name in INITIALIZERS:
            raise self.error(e.func, f"'{name}' is an initializer: use it as a Param's value")
        if name in self.later:
            raise self.error(
                e.func, f"'{name}' is used before it is defined (at line {self.later[name]})"
            )
        known = [*SPEC_FUNCTIONS, *REDUCTIONS, "cross_entropy", *self.functions]
        raise self.error(e.func, f"unknown function '{name}'{self.suggest(name, known)}")

    def axis(self, e: ast.expr) -> int | tuple[int, ...]:
        """``axis=k`` or ``axis=(j, k)`` of integer literals."""
        items = e.elts if isinstance(e, ast.Tuple) else [e]
        axes = []
        for item in items:
            sign, inner = 1, item
            while isinstance(inner, ast.UnaryOp) and isinstance(inner.op, (ast.USub, ast.UAdd)):
                sign *= -1 if isinstance(inner.op, ast.USub) else 1
                inner = inner.operand
            if not (isinstance(inner, ast.Constant) and type(inner.value) is int):
                raise self.error(item, "axis must be an integer literal or a tuple of them")
            if inner.value.bit_length() > 31:
                raise self.error(item, "axis is out of range")
            axes.append(sign * inner.value)
        return tuple(axes) if isinstance(e, ast.Tuple) else axes[0]
