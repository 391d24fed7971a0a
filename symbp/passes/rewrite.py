"""The rewrite engine: rules as data, grouped in named rule sets, and one driver.

Two kinds of rule, both plain data:

- ``Rule(name, ops, fn)``: a graph rule. ``fn(node, ctx)`` returns the replacement node or
  ``None`` (its guard declined); ``ops`` lists the node ops it can fire on, so the driver
  offers each node only the rules that can match it.
- ``equation("exp(x) * exp(y) = exp(x + y)")``: the shorthand for a pure identity of
  elementwise expressions. ``x``, ``y``, ``u``, ``v`` and ``w`` match any subexpression,
  ``c`` and ``k`` only numbers, and ``+`` and ``*`` match either operand order (at the top
  of each operand; the other bindings inside it are not searched). An optional guard sees
  the bindings. A rule set's equations are applied inside every elementwise node,
  bottom-up through its expression, each expression once (the results are cached).

``run_pass`` applies a ``Pass`` (one or more rule sets) to a graph in one bottom-up
traversal, linear in the graph's size: each node is rebuilt on its rewritten arguments and
then rewritten until no rule fires; nodes a rule creates are normalized the same way before
their parent sees them. It returns the map from old to new nodes of the nodes it changed,
so that names and spec lines follow the values they label, and how often each rule fired.
A rule that can only fire on some expressions says so (``Rule.applies``): a node whose
expression no rule of the pass allows costs one lookup.
"""

from __future__ import annotations

import ast
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache

from ..ir import expr as ex
from ..ir import ops
from ..ir.build import BUILD
from ..ir.expr import AST_OPERATORS, Expr
from ..ir.functions import FUNCTIONS
from ..ir.node import Node, Op, order_and_uses


@dataclass
class Context:
    """What a rule may ask about the graph: use counts and nodes that must stay variables."""

    uses: dict[Node, int] = field(default_factory=dict)
    keep: set[Node] = field(default_factory=set)  # named nodes (nodes hash by identity)
    nodes: set[Node] = field(default_factory=set)  # the nodes of the input graph
    made: set[Node] = field(default_factory=set)  # what the pass has turned them into so far
    fired: Counter = field(default_factory=Counter)  # rule name -> times fired

    def single_use(self, node: Node) -> bool:
        return self.uses.get(node, 0) <= 1 and node not in self.keep


@dataclass(frozen=True)
class Rule:
    name: str
    ops: tuple[Op, ...]
    fn: Callable[[Node, Context], Node | None]
    counted: bool = True  # False for a rule that counts what fired itself (equations)
    # for an elementwise rule, a cheap test of the expression alone: False where the rule
    # cannot fire whatever the arguments (the driver asks once per expression, not per node)
    applies: Callable[[Expr], bool] | None = None


# ---------------------------------------------------------------- the shorthand

ANY = frozenset("xyuvw")  # pattern variables matching any subexpression
NUMBER = frozenset("ck")  # pattern variables matching numbers only
COMMUTATIVE = frozenset(("add", "mul"))

Pattern = tuple  # ("var", name) | ("num", value) | (op, *children)


def _pattern(node: ast.expr) -> Pattern:
    if isinstance(node, ast.Name):
        if node.id not in ANY | NUMBER:
            raise ValueError(f"pattern variable {node.id!r}: use one of {sorted(ANY | NUMBER)}")
        return ("var", node.id)
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        return ("num", ex.decimal(node.value))
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        inner = _pattern(node.operand)
        return ("num", ex.neg(inner[1])) if inner[0] == "num" else ("neg", inner)
    if isinstance(node, ast.BinOp) and type(node.op) in AST_OPERATORS:
        return (AST_OPERATORS[type(node.op)], _pattern(node.left), _pattern(node.right))
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id in FUNCTIONS
        and len(node.args) == FUNCTIONS[node.func.id].arity
    ):
        return (node.func.id, *map(_pattern, node.args))
    raise ValueError(f"cannot read {ast.unparse(node)!r} as a pattern")


def _match(p: Pattern, e: Expr, env: dict[str, Expr]) -> bool:
    kind = p[0]
    if kind == "var":
        name = p[1]
        if name in NUMBER and e.op != "num":
            return False
        bound = env.get(name)
        if bound is not None:
            return bound is e
        env[name] = e
        return True
    if kind == "num":
        return e is p[1]
    if e.op != kind or len(e.args) != len(p) - 1:
        return False
    saved = dict(env)
    for args in (e.args, e.args[::-1]) if kind in COMMUTATIVE else (e.args,):
        if all(_match(q, a, env) for q, a in zip(p[1:], args)):
            return True
        env.clear()
        env.update(saved)
    return False


def _instantiate(p: Pattern, env: dict[str, Expr]) -> Expr:
    kind = p[0]
    if kind == "var":
        return env[p[1]]
    if kind == "num":
        return p[1]
    return ex.build(kind, tuple(_instantiate(c, env) for c in p[1:]))


@dataclass(frozen=True)
class Equation:
    """A pure identity ``lhs = rhs`` of elementwise expressions, read left to right."""

    name: str
    text: str
    lhs: Pattern
    rhs: Pattern
    guard: Callable[[dict[str, Expr]], bool] | None = None

    def apply(self, e: Expr) -> Expr | None:
        env: dict[str, Expr] = {}
        if not _match(self.lhs, e, env):
            return None
        if self.guard is not None and not self.guard(env):
            return None
        out = _instantiate(self.rhs, env)
        return None if out is e else out


def equation(
    text: str, name: str | None = None, guard: Callable[[dict[str, Expr]], bool] | None = None
) -> Equation:
    """``equation("x + x = 2 * x")``: an identity in the spec's own notation."""
    lhs, sep, rhs = text.partition("=")
    if not sep:
        raise ValueError(f"an equation needs '=': {text!r}")
    left = _pattern(ast.parse(lhs.strip(), mode="eval").body)
    right = _pattern(ast.parse(rhs.strip(), mode="eval").body)
    if left[0] in ("var", "num"):
        raise ValueError(f"the left side of {text!r} must be an operation")
    return Equation(name or text, text, left, right, guard)


@dataclass
class RuleSet:
    """A named group of rules: graph rules, and equations applied inside expressions."""

    name: str
    rules: list[Rule] = field(default_factory=list)
    equations: list[Equation] = field(default_factory=list)
    doc: str = ""

    def __post_init__(self) -> None:
        self.by_op: dict[Op, list[Rule]] = {}
        for r in self.rules:
            for op in r.ops:
                self.by_op.setdefault(op, []).append(r)
        self.eq_by_op: dict[str, list[Equation]] = {}
        for eq in self.equations:
            self.eq_by_op.setdefault(eq.lhs[0], []).append(eq)
        self._open: set[Expr] = set()  # expressions being normalized, up the stack
        # expression -> (normal form, the equations that fired on the way): graphs repeat a
        # few expressions many times
        self._normal_form = lru_cache(maxsize=65536)(self._normalize)

    def normal_form(self, e: Expr) -> tuple[Expr, tuple[str, ...]]:
        """``e`` with the equations applied bottom-up until none fires.

        Equations that undo each other (a = b, b = a) would loop: an expression met again
        while it is still being normalized is left as it is there."""
        if e in self._open:
            return e, ()
        self._open.add(e)
        try:
            return self._normal_form(e)
        finally:
            self._open.discard(e)

    def _normalize(self, e: Expr) -> tuple[Expr, tuple[str, ...]]:
        fired: list[str] = []
        t = e
        if e.args:
            parts = [self.normal_form(a) for a in e.args]
            for _, f in parts:
                fired.extend(f)
            args = tuple(p[0] for p in parts)
            t = e if args == e.args else ex.build(e.op, args, e.value)
        for _ in range(50):
            for eq in self.eq_by_op.get(t.op, ()):
                out = eq.apply(t)
                if out is not None:
                    fired.append(eq.name)
                    t, more = self.normal_form(out)
                    fired.extend(more)
                    break
            else:
                break
        return t, tuple(fired)


def expression_rule(rs: RuleSet) -> Rule:
    """The graph rule applying ``rs``'s equations inside an elementwise node."""

    def fn(node: Node, ctx: Context) -> Node | None:
        new, fired = rs.normal_form(node.attr)
        if new is node.attr:
            return None
        ctx.fired.update(fired)
        return ops.elementwise(new, node.args)

    return Rule(
        f"{rs.name} equations",
        (Op.EW,),
        fn,
        counted=False,
        applies=lambda e: rs.normal_form(e)[0] is not e,
    )


@dataclass
class Pass:
    """Rule sets applied together in one traversal (list order is priority)."""

    name: str
    sets: list[RuleSet]

    def __post_init__(self) -> None:
        self.by_op: dict[Op, list[Rule]] = {}
        for rs in self.sets:
            rules = list(rs.rules) + ([expression_rule(rs)] if rs.equations else [])
            for r in rules:
                for op in r.ops:
                    self.by_op.setdefault(op, []).append(r)
        self.ew_rules = lru_cache(maxsize=65536)(self._ew_rules)

    def _ew_rules(self, e: Expr) -> tuple[Rule, ...]:
        """The elementwise rules that may fire on a node computing ``e``."""
        return tuple(r for r in self.by_op.get(Op.EW, ()) if r.applies is None or r.applies(e))


@dataclass
class PassStats:
    name: str
    fired: Counter
    nodes_before: int
    nodes_after: int = -1  # filled in by the pipeline
    sets: list[RuleSet] = field(default_factory=list)  # the rule sets the pass applied
    born: dict[Node, Node] = field(default_factory=dict)  # new node -> node it came from


def rebuild(node: Node, args: tuple[Node, ...] | list[Node]) -> Node:
    """The node ``node`` would be with ``args``, through the canonicalizing constructors."""
    args = tuple(args)
    if args == node.args:  # the same nodes (nodes compare by identity)
        return node
    return BUILD[node.op](args, node.attr)


MAX_REWRITES_PER_NODE = 100


def run_pass(p: Pass, roots: list[Node], keep: set[Node]) -> tuple[dict[Node, Node], PassStats]:
    """Apply ``p`` to the graph below ``roots``; the old -> new map of the nodes it changed
    (a node not in it is as it was), and what fired.

    Bottom-up in one traversal: a node is rebuilt on its arguments' normal forms and then
    rewritten until no rule fires. A node a rule creates may have arguments the traversal
    has not seen (``batch_sum(x)`` made from ``sum over the batch of c * x``); they are
    normalized first, so the result is in normal form all the way down.
    """
    return _Rewriter(p, roots, keep).run()


class _Rewriter:
    """One application of a pass (an object, not closures: closures calling each other
    form a reference cycle that would keep every intermediate graph alive while the
    compiler runs with the garbage collector paused)."""

    def __init__(self, p: Pass, roots: list[Node], keep: set[Node]) -> None:
        self.p, self.roots, self.keep = p, roots, keep
        self.order, uses = order_and_uses(roots)
        self.ctx = Context(uses, keep, set(self.order))
        self.mapping: dict[Node, Node] = {}
        self.normal: set[Node] = set()  # nodes known to be in normal form
        self.born: dict[Node, Node] = {}  # a node a rule made -> the node rewritten then
        self.current: Node | None = None

    def run(self) -> tuple[dict[Node, Node], PassStats]:
        mapping, uses, keep, normal = self.mapping, self.ctx.uses, self.keep, self.normal
        made = self.ctx.made
        changed: dict[Node, Node] = {}
        # the nodes no rule of the pass can match are normal as they are
        idle = {op for op in Op if not self.p.by_op.get(op)}
        ew_rules = self.p.ew_rules  # for an elementwise node: those its expression allows
        for old in self.order:
            args = old.args
            if args and changed:  # (while nothing has changed, every argument is as it was)
                new_args = tuple([mapping[a] for a in args])
                new = old if new_args == args else self._rebuild(old, new_args)
            else:
                new = old
            if new not in normal and (
                ew_rules(new.attr) if new.op is Op.EW else new.op not in idle
            ):
                self.current = old
                new = self.normalize(new)
            if new is not old:
                uses[new] = uses.get(new, 0) + uses.get(old, 0)
                if old in keep:
                    keep.add(new)
                made.add(new)  # a value of the graph from here on, for rules to reuse
                changed[old] = new
            mapping[old] = new
        stats = PassStats(
            self.p.name, self.ctx.fired, len(self.order), sets=list(self.p.sets), born=self.born
        )
        if not changed:  # the graph is the one it was
            stats.nodes_after = len(self.order)
        return changed, stats

    def normalize(self, node: Node, depth: int = 0) -> Node:
        """``node``, whose arguments are in normal form, rewritten until no rule fires."""
        by_op, ctx, fired = self.p.by_op, self.ctx, self.ctx.fired
        for _ in range(MAX_REWRITES_PER_NODE):
            if node in self.normal:
                return node
            rules = self.p.ew_rules(node.attr) if node.op is Op.EW else by_op.get(node.op, ())
            for rule in rules:
                try:
                    out = rule.fn(node, ctx)
                    if out is not None and out is not node and depth < 50:
                        out = rebuild(out, [self.normalize_new(a, depth + 1) for a in out.args])
                except ops.GraphError:  # the rewrite would fold a constant that is no float
                    out = None  # (log of a sum that is 0 everywhere): keep the node as it is
                if out is not None and out is not node:
                    if rule.counted:
                        fired[rule.name] += 1
                    node = out
                    break
            else:
                self.normal.add(node)
                return node
        return node

    @staticmethod
    def _rebuild(node: Node, args: list[Node]) -> Node:
        """``node`` on rewritten arguments, or as it was if they make it undefined (a log
        whose argument folded to the constant 0 computes -inf at run time, as NumPy does,
        rather than failing the compile)."""
        try:
            return rebuild(node, args)
        except ops.GraphError:
            return node

    def normalize_new(self, node: Node, depth: int) -> Node:
        """A node a rule made (or one of its arguments), in normal form."""
        if node in self.normal:
            return node
        if node in self.mapping:
            return self.mapping[node]
        if not node.args:
            return node
        rebuilt = self._rebuild(node, [self.normalize_new(a, depth + 1) for a in node.args])
        out = self.normalize(rebuilt, depth)
        if out not in self.ctx.nodes:
            self.born.setdefault(out, self.current)
        return out
