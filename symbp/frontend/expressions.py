"""The expressions of the spec language, and user ``def``s: ``ast`` nodes to IR nodes.

``Expressions`` is the part of the parser (``symbp.frontend.parser``) that reads what stands
right of ``=``: numbers, names, operators, comparisons, ``E[ids]`` and calls of user
functions; it inherits the reading of built-in calls (``frontend.calls``), of indexing
(``frontend.indexing``) and of tensors of a literal shape (``frontend.tensors``). Constants
are folded exactly as the spec writes them, and one that is no finite float is an error at
its place; shape errors of ``symbp.ir.ops`` are located too.
"""

from __future__ import annotations

import ast

from ..errors import SpecError
from ..ir import expr as ex
from ..ir import ops
from ..ir.expr import AST_COMPARISONS, Expr, X, substitute, walk
from ..ir.functions import FUNCTIONS, SPEC_FUNCTIONS
from ..ir.node import Node, Op
from . import hints
from .calls import REDUCTIONS, BuiltinCalls
from .indexing import INDEXING_FUNCTIONS, IndexingExpressions
from .tensors import CONSTRUCTORS, LiteralShapes
from .windows import WINDOW_FUNCTIONS, WindowCalls

Value = "Node | Expr"  # a node, or a number not yet placed in the graph

INITIALIZERS = {"zeros": 0, "ones": 0, "glorot": 0, "he": 0, "normal": 1, "uniform": 2}
BINOPS = {
    ast.Add: ops.add,
    ast.Sub: ops.sub,
    ast.Mult: ops.mul,
    ast.Div: ops.div,
    ast.Pow: ops.power,
    ast.MatMult: ops.matmul,
}
MAX_FUNCTION_TERMS = 10_000  # a user def's size once the defs it calls are expanded


class Expressions(BuiltinCalls, IndexingExpressions, LiteralShapes, WindowCalls):
    """Reads expressions; the parser's statements bind their values to names
    (``self.values``) and define the user functions (``self.functions``)."""

    values: dict[str, tuple[Value, int]]  # bound names -> (value, line)
    functions: dict[str, tuple[int, Expr, int]]  # user function -> (arity, body, line)
    terms: dict[str, tuple[int, list[int]]]  # user function -> its expanded size, uses
    later: dict[str, int]  # every name bound at top level -> its line
    line: int  # the line of the statement being read
    sites: int  # dropout calls met so far
    index_lines: dict[str, int]  # integer Input -> the first line that indexes with it

    # -------------------------------------------------------------- functions

    def function(self, f: ast.FunctionDef) -> None:
        """A user ``def``: one ``return`` of elementwise arithmetic, kept as an ``Expr``."""
        name = f.name
        if name in (*SPEC_FUNCTIONS, *REDUCTIONS, "cross_entropy", *INDEXING_FUNCTIONS):
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
        if isinstance(e, ast.Compare):
            name = self.comparison(e)
            left, right = (self.scalar_expr(a, env, fname) for a in (e.left, *e.comparators))
            return ex.call(name, left, right)
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
                f"{hints.did_you_mean(callee, [*SPEC_FUNCTIONS, *self.functions])}",
            )
        raise self.error(e, f"unsupported in a function body: {self.describe(e)}")

    def check_constant(self, e: ast.expr, value: Expr) -> None:
        """A constant the spec computes must be a finite real float (no exp(1000), sqrt(-1)).

        Arithmetic on numbers folds exactly where it stays small, else in floating point
        (``symbp.ir.numbers``), so 10**10**10 is found too large without being computed."""
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
        if isinstance(e, ast.Subscript):
            if self.indexes_by_tensor(e):
                return self.gather(e)
            return self.subscript(e)
        if isinstance(e, ast.Compare):
            name = self.comparison(e)
            left, right = self.expr(e.left), self.expr(e.comparators[0])
            if not isinstance(left, Node) and not isinstance(right, Node):
                return ex.call(name, left, right)
            pair = (self.as_node(left), self.as_node(right))
            return ops.elementwise(ex.call(name, X[0], X[1]), pair, f"`{self.segment(e)}`")
        hint = hints.construct_hint(e, self.known_functions())
        raise self.error(e, f"unsupported expression: {self.describe(e)}{hint}")

    def comparison(self, e: ast.Compare) -> str:
        """The function of a comparison ``a < b`` (a mask: 1 where it holds, else 0); a chain
        ``a < b < c`` is an error saying how to write it."""
        names = [AST_COMPARISONS.get(type(op)) for op in e.ops]
        if None in names:
            raise self.error(
                e, f"unsupported comparison `{self.segment(e)}`: only < <= > >= == != compare"
            )
        if len(e.ops) > 1:
            parts = [self.segment(p) for p in (e.left, *e.comparators)]
            symbols = [FUNCTIONS[name].operator for name in names]
            pairs = [f"({a} {op} {b})" for a, op, b in zip(parts, symbols, parts[1:])]
            pairs = " * ".join(pairs[:2]) + (" * ..." if len(pairs) > 2 else "")
            raise self.error(
                e,
                f"a chained comparison `{self.segment(e)}` is not supported: "
                f"write one comparison at a time, e.g. {pairs}",
            )
        return names[0]

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
            value = self.values[e.id][0]
            if value.__class__ is Node and value.dtype == "int":
                raise self.error(
                    e,
                    f"'{e.id}' is an integer Input (token ids: it is an index at line "
                    f"{self.index_lines[e.id]}), so it can only be used as an index, as in "
                    f"E[{e.id}]; for its values as numbers declare another Input",
                )
            return value
        why = self.why_unbound(e.id)
        if why is not None:
            raise self.error(e, why)
        if self.later.get(e.id) == self.line:
            raise self.error(e, f"'{e.id}' is used in its own definition")
        if e.id in self.later:
            raise self.error(
                e, f"'{e.id}' is used before it is defined (at line {self.later[e.id]})"
            )
        if e.id in self.functions or e.id in SPEC_FUNCTIONS or e.id in (*REDUCTIONS, "dropout"):
            raise self.error(e, f"'{e.id}' is a function: call it, e.g. {e.id}(z)")
        if e.id in INITIALIZERS:
            tensor = f", or call {e.id}(shape) for a tensor" if e.id in CONSTRUCTORS else ""
            raise self.error(e, f"'{e.id}' is an initializer: use it as a Param's value{tensor}")
        raise self.error(e, f"unknown name '{e.id}'{hints.did_you_mean(e.id, self.values)}")

    def why_unbound(self, name: str) -> str | None:
        """Why ``name``, bound somewhere but not now, cannot be read here (the loops reader
        knows); None when it is not that."""
        return None

    def known_functions(self) -> list[str]:
        """Every function a spec may call here: the names the nearest-name hints draw on."""
        return [
            *SPEC_FUNCTIONS,
            *REDUCTIONS,
            "cross_entropy",
            "dropout",
            *INDEXING_FUNCTIONS,
            *CONSTRUCTORS,
            *WINDOW_FUNCTIONS,
            *self.functions,
        ]

    # ---------------------------------------------------------------- gather

    def indexes_by_tensor(self, e: ast.Subscript) -> bool:
        """Is ``e`` a tensor indexed by a name bound to a tensor (``E[ids]``)?"""
        index = e.slice
        return isinstance(index, ast.Name) and isinstance(
            self.values.get(index.id, (None,))[0], Node
        )

    def gather(self, e: ast.Subscript) -> Node:
        """``E[ids]``: the rows of E's first axis at the ids of an integer Input."""
        name = e.slice.id
        ids = self.values[name][0]
        if not ops.is_ids(ids):
            raise self.error(
                e.slice,
                f"the index '{name}' is a float value of shape {ids.shape}: only an Input "
                f"used as nothing but an index holds integer ids (declare `{name}: Input[...]`)",
            )
        table = self.expr(e.value)
        if not isinstance(table, Node) or table.ndim == 0:
            raise self.error(
                e.value,
                f"`{self.segment(e.value)}` is a scalar: indexing by '{name}' takes rows of "
                "a tensor of rank 1 or more",
            )
        return ops.gather(table, ids)

    # ----------------------------------------------------------------- calls

    def user_call(self, e: ast.Call, name: str) -> Node:
        """A call of a user ``def``: its body, an elementwise expression, of the arguments."""
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

    def unknown_function(self, e: ast.Call, name: str) -> SpecError:
        """What a call of ``name``, which is no function, is: the error saying so."""
        if name in self.values:
            return self.error(e.func, f"'{name}' is a value, not a function")
        if name in INITIALIZERS:
            return self.error(e.func, f"'{name}' is an initializer: use it as a Param's value")
        if name in self.later:
            return self.error(
                e.func, f"'{name}' is used before it is defined (at line {self.later[name]})"
            )
        hint = hints.did_you_mean(name, self.known_functions())
        return self.error(e.func, f"unknown function '{name}'{hint}")
