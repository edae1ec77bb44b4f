"""The formula grammar of derived features: parsed once, evaluated by numpy and by ONNX.

A config may declare ``derived."Total.SF" = "Total.Bsmt.SF + X1st.Flr.SF + X2nd.Flr.SF"``.
The grammar is deliberately tiny and is parsed here, never ``eval``-ed::

    expr   := term (("+" | "-") term)*
    term   := factor (("*" | "/") factor)*
    factor := ("+" | "-") factor | NUMBER | NAME | "`" any text but "`" "`" | "(" expr ")"

NAME is a column name made of letters, digits, ``_`` and ``.`` (not starting with a digit
or a dot); a name with other characters is written between backticks. Numbers are
decimal (``0.5``, ``1e3``). Nothing else is accepted: no functions, no powers, no
comparisons. `Formula.evaluate` is the numpy reference; `estate.export.onnx_graph`
writes the same tree as Add/Sub/Mul/Div/Neg nodes on float64 columns, so both sides
round identically (IEEE double), and only the result is cast to float32.

What a formula gives when an input is missing or a division has a zero denominator is
the layout's rule (`estate.runtime.layout`): inputs are the values the model sees
(a missing number is its training median), and a result that is not finite (``x / 0``,
``0 / 0``, overflow) becomes the derived feature's own training median.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TypeVar

import numpy as np

#: Longest formula accepted, and deepest nesting (a formula is a line, not a program).
MAX_FORMULA_CHARS = 500
MAX_DEPTH = 32

_TOKEN = re.compile(
    r"\s*(?:(?P<number>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)"
    r"|(?P<name>[A-Za-z_][A-Za-z0-9_.]*)"
    r"|`(?P<quoted>[^`]+)`"
    r"|(?P<op>[-+*/()]))"
)

T = TypeVar("T")


class FormulaError(ValueError):
    """A formula that does not parse; the message says where and what was expected."""


@dataclass(frozen=True)
class Num:
    value: float


@dataclass(frozen=True)
class Col:
    name: str


@dataclass(frozen=True)
class Neg:
    operand: Node


@dataclass(frozen=True)
class Bin:
    op: str  # one of + - * /
    left: Node
    right: Node


Node = Num | Col | Neg | Bin


@dataclass(frozen=True)
class Formula:
    """A parsed formula: its text, its tree and the columns it reads (in first-use order)."""

    text: str
    tree: Node
    inputs: tuple[str, ...]

    def evaluate(self, columns: Mapping[str, np.ndarray]) -> np.ndarray:
        """The formula on float64 columns, with IEEE results (x/0 = ±inf, 0/0 = NaN)."""

        def num(value: float) -> np.ndarray:
            return np.asarray(value, dtype=np.float64)

        def col(name: str) -> np.ndarray:
            return np.asarray(columns[name], dtype=np.float64)

        ops: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
            "+": np.add,
            "-": np.subtract,
            "*": np.multiply,
            "/": np.divide,
        }
        with np.errstate(all="ignore"):
            return np.asarray(
                fold(self.tree, num, col, np.negative, lambda op, a, b: ops[op](a, b)),
                dtype=np.float64,
            )


def fold(
    node: Node,
    num: Callable[[float], T],
    col: Callable[[str], T],
    neg: Callable[[T], T],
    binary: Callable[[str, T, T], T],
) -> T:
    """Evaluate the tree bottom-up with the given operations (numpy, or ONNX node writers)."""
    if isinstance(node, Num):
        return num(node.value)
    if isinstance(node, Col):
        return col(node.name)
    if isinstance(node, Neg):
        return neg(fold(node.operand, num, col, neg, binary))
    return binary(
        node.op,
        fold(node.left, num, col, neg, binary),
        fold(node.right, num, col, neg, binary),
    )


def parse(text: str) -> Formula:
    """Parse `text` by the grammar above; `FormulaError` says where it goes wrong."""
    if not isinstance(text, str) or not text.strip():
        raise FormulaError("a formula must be a non-empty text such as 'a + b'")
    if len(text) > MAX_FORMULA_CHARS:
        raise FormulaError(f"a formula may be at most {MAX_FORMULA_CHARS} characters")
    tokens = _tokens(text)
    parser = _Parser(text, tokens)
    tree = parser.expr(0)
    if parser.pos < len(tokens):
        _kind, value, at = tokens[parser.pos]
        raise FormulaError(f"unexpected {value!r} at character {at + 1} of {text!r}")
    names: list[str] = []
    _collect(tree, names)
    if not names:
        raise FormulaError(f"{text!r} reads no column; a derived feature needs at least one")
    return Formula(text=text, tree=tree, inputs=tuple(dict.fromkeys(names)))


def _collect(node: Node, names: list[str]) -> None:
    if isinstance(node, Col):
        names.append(node.name)
    elif isinstance(node, Neg):
        _collect(node.operand, names)
    elif isinstance(node, Bin):
        _collect(node.left, names)
        _collect(node.right, names)


def _tokens(text: str) -> list[tuple[str, str, int]]:
    """(kind, text, offset) of each token; anything outside the grammar is refused here."""
    out: list[tuple[str, str, int]] = []
    pos = 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        match = _TOKEN.match(text, pos)
        if match is None or match.end() == pos:
            at = pos + len(text[pos:]) - len(text[pos:].lstrip())
            raise FormulaError(
                f"unexpected {text[at]!r} at character {at + 1} of {text!r}: a formula has "
                "column names, numbers, + - * / and parentheses only (quote a name with "
                "other characters in backticks)"
            )
        kind = match.lastgroup or "op"
        value = match.group(kind)
        out.append((kind, value, match.start(kind)))
        pos = match.end()
    return out


class _Parser:
    """Recursive descent over the token list, depth-limited."""

    def __init__(self, text: str, tokens: list[tuple[str, str, int]]) -> None:
        self.text = text
        self.tokens = tokens
        self.pos = 0

    def _peek(self) -> tuple[str, str, int] | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def _op(self, ops: str) -> str | None:
        tok = self._peek()
        if tok is not None and tok[0] == "op" and tok[1] in ops:
            self.pos += 1
            return tok[1]
        return None

    def expr(self, depth: int) -> Node:
        node = self.term(depth)
        while (op := self._op("+-")) is not None:
            node = Bin(op, node, self.term(depth))
        return node

    def term(self, depth: int) -> Node:
        node = self.factor(depth)
        while (op := self._op("*/")) is not None:
            node = Bin(op, node, self.factor(depth))
        return node

    def factor(self, depth: int) -> Node:
        if depth > MAX_DEPTH:
            raise FormulaError(f"{self.text!r} nests deeper than {MAX_DEPTH} levels")
        tok = self._peek()
        if tok is None:
            raise FormulaError(f"{self.text!r} ends where a column, number or '(' was expected")
        kind, value, at = tok
        if kind == "op" and value in "+-":
            self.pos += 1
            operand = self.factor(depth + 1)
            return Neg(operand) if value == "-" else operand
        if kind == "op" and value == "(":
            self.pos += 1
            node = self.expr(depth + 1)
            if self._op(")") is None:
                raise FormulaError(f"{self.text!r}: '(' at character {at + 1} is never closed")
            return node
        self.pos += 1
        if kind == "number":
            return Num(float(value))
        if kind in ("name", "quoted"):
            return Col(value.strip() if kind == "quoted" else value)
        raise FormulaError(
            f"unexpected {value!r} at character {at + 1} of {self.text!r}: expected a "
            "column, a number or '('"
        )
