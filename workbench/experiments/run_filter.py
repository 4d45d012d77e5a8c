"""MLflow's run search syntax, extended with ``OR``, parentheses and ranges on params.

The Experiments page's filter box and ``workbench runs --filter`` take the same text, so a
filter copied from one works in the other (and a plain MLflow filter works in both)::

    metrics.accuracy > 0.9 and params.model = 'random_forest'
    tags.workbench.kind = 'baseline' OR (tags.workbench.kind = 'trial' AND metrics.value >= 0.8)
    attributes.status IN ('FINISHED', 'RUNNING') and params.model LIKE 'random%'

:func:`parse` returns an AST (:class:`Comparison`, :class:`And`, :class:`Or`);
:func:`to_sql` compiles it to a SQLAlchemy condition over :class:`~workbench.db.models.RunProjection`
(JSON columns, so SQLite and PostgreSQL both evaluate it server-side) and :func:`matches`
evaluates it on one run dict in Python (the reference semantics, used by tests and by callers
without a projection).

Semantics follow MLflow: a run that lacks the metric, param or tag a comparison names does not
match it (``!=`` included). Metrics compare as numbers; params and tags as strings, except that a
param compared with a number by ``<``, ``<=``, ``>``, ``>=`` (an extension) compares numerically
and skips non-numeric values. ``LIKE`` is case-sensitive, ``ILIKE`` is not.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from workbench.errors import InvalidInput

FIELD = "filter"
ENTITY_ALIASES: dict[str, str] = {
    "metric": "metrics", "metrics": "metrics",
    "param": "params", "params": "params", "parameter": "params", "parameters": "params",
    "tag": "tags", "tags": "tags",
    "attribute": "attributes", "attributes": "attributes", "attr": "attributes", "run": "attributes",
}
# attribute name as typed -> (projection column, kind)
ATTRIBUTES: dict[str, tuple[str, str]] = {
    "status": ("status", "string"),
    "run_id": ("run_id", "string"),
    "run_name": ("run_name", "string"),
    "name": ("run_name", "string"),
    "start_time": ("start_time", "number"),
    "created": ("start_time", "number"),
    "end_time": ("end_time", "number"),
    "lifecycle_stage": ("lifecycle_stage", "string"),
    "kind": ("kind", "string"),
    "job_id": ("job_id", "string"),
}
NUMERIC_OPS = ("=", "!=", "<", "<=", ">", ">=")
STRING_OPS = ("=", "!=", "LIKE", "ILIKE", "NOT LIKE", "NOT ILIKE", "IN", "NOT IN")
RANGE_OPS = ("<", "<=", ">", ">=")


@dataclass(frozen=True)
class Comparison:
    """``entity.key op value``; ``value`` is a tuple for IN / NOT IN."""

    entity: str  # metrics | params | tags | attributes
    key: str
    op: str
    value: Any
    position: int = 0

    def __str__(self) -> str:
        key = self.key if re.fullmatch(r"[A-Za-z_][\w.]*", self.key) else f"`{self.key}`"
        return f"{self.entity}.{key} {self.op} {_literal(self.value)}"


@dataclass(frozen=True)
class And:
    """Every part matches."""

    parts: tuple[Node, ...]

    def __str__(self) -> str:
        return " AND ".join(_wrap(p) for p in self.parts)


@dataclass(frozen=True)
class Or:
    """At least one part matches."""

    parts: tuple[Node, ...]

    def __str__(self) -> str:
        return " OR ".join(_wrap(p) for p in self.parts)


Node = Comparison | And | Or


def _wrap(node: Node) -> str:
    return f"({node})" if isinstance(node, Or | And) else str(node)


def _literal(value: Any) -> str:
    if isinstance(value, tuple):
        return "(" + ", ".join(_literal(v) for v in value) + ")"
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    return repr(value)


# --------------------------------------------------------------------------- tokenizer


@dataclass(frozen=True)
class _Token:
    kind: str  # ident | string | number | op | lparen | rparen | comma | keyword | end
    text: str
    value: Any
    position: int  # 1-based column


_KEYWORDS = {"AND", "OR", "IN", "NOT", "LIKE", "ILIKE", "IS"}
_TOKEN_RE = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<number>[+-]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][+-]?\d+)?(?![\d.]))
  | (?P<string>'(?:[^']|'')*'|"(?:[^"]|"")*")
  | (?P<op><=|>=|!=|<>|==|=|<|>)
  | (?P<lparen>\()
  | (?P<rparen>\))
  | (?P<comma>,)
  | (?P<ident>(?:[A-Za-z_][\w]*|`[^`]*`)(?:\.(?:[A-Za-z_0-9][\w\-]*|`[^`]*`|"[^"]*"))*)
    """,
    re.VERBOSE,
)


def _error(message: str, position: int, text: str) -> InvalidInput:
    # One line (the CLI prints errors on one line): the column, what was wrong, and where.
    where = f" (at {text[position - 1 : position + 19]!r})" if position <= len(text) else " (at the end)"
    return InvalidInput(f"Filter syntax error at column {position}: {message}{where}.", field=FIELD)


def _tokenize(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    index = 0
    while index < len(text):
        match = _TOKEN_RE.match(text, index)
        if match is None or match.end() == index:
            raise _error(
                f"unexpected character {text[index]!r}; expected a name such as metrics.accuracy, an operator, "
                "a quoted string, a number, or parentheses",
                index + 1,
                text,
            )
        kind = match.lastgroup or ""
        raw = match.group(0)
        position = index + 1
        index = match.end()
        if kind == "ws":
            continue
        if kind == "string":
            quote = raw[0]
            tokens.append(_Token("string", raw, raw[1:-1].replace(quote * 2, quote), position))
        elif kind == "number":
            tokens.append(_Token("number", raw, float(raw), position))
        elif kind == "op":
            tokens.append(_Token("op", raw, {"<>": "!=", "==": "="}.get(raw, raw), position))
        elif kind == "ident" and raw.upper() in _KEYWORDS:
            tokens.append(_Token("keyword", raw, raw.upper(), position))
        else:
            tokens.append(_Token(kind, raw, raw, position))
    tokens.append(_Token("end", "", None, len(text) + 1))
    return tokens


def _unquote(part: str) -> str:
    if len(part) >= 2 and part[0] == part[-1] and part[0] in "`\"":
        return part[1:-1]
    return part


def _split_identifier(token: _Token, text: str) -> tuple[str, str]:
    raw = token.text
    head, dot, rest = raw.partition(".")
    entity = ENTITY_ALIASES.get(_unquote(head).lower())
    if entity is None or not dot or not rest:
        raise _error(
            f"{raw!r} is not a run field; expected metrics.<name>, params.<name>, tags.<name> or "
            f"attributes.<{'|'.join(sorted(set(ATTRIBUTES)))}>",
            token.position,
            text,
        )
    key = _unquote(rest) if rest.count("`") == 2 and rest.startswith("`") and rest.endswith("`") else rest
    if entity == "attributes":
        key = key.lower()
        if key not in ATTRIBUTES:
            raise _error(
                f"unknown attribute {key!r}; expected one of {', '.join(sorted(ATTRIBUTES))}", token.position, text
            )
    return entity, key


# --------------------------------------------------------------------------- parser


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = _tokenize(text)
        self.index = 0

    @property
    def current(self) -> _Token:
        return self.tokens[self.index]

    def advance(self) -> _Token:
        token = self.tokens[self.index]
        self.index += 1
        return token

    def is_keyword(self, *words: str) -> bool:
        return self.current.kind == "keyword" and self.current.value in words

    def parse(self) -> Node:
        node = self.parse_or()
        if self.current.kind != "end":
            found = self.current.text
            raise _error(f"unexpected {found!r}; expected AND, OR or the end of the filter", self.current.position,
                         self.text)
        return node

    def parse_or(self) -> Node:
        parts = [self.parse_and()]
        while self.is_keyword("OR"):
            self.advance()
            parts.append(self.parse_and())
        return parts[0] if len(parts) == 1 else Or(tuple(parts))

    def parse_and(self) -> Node:
        parts = [self.parse_primary()]
        while self.is_keyword("AND"):
            self.advance()
            parts.append(self.parse_primary())
        return parts[0] if len(parts) == 1 else And(tuple(parts))

    def parse_primary(self) -> Node:
        token = self.current
        if token.kind == "lparen":
            self.advance()
            node = self.parse_or()
            if self.current.kind != "rparen":
                raise _error(f"missing ')' to close the '(' at column {token.position}", self.current.position,
                             self.text)
            self.advance()
            return node
        if token.kind == "ident":
            return self.parse_comparison()
        what = "the end of the filter" if token.kind == "end" else repr(token.text)
        raise _error(f"found {what}; expected a comparison such as metrics.accuracy > 0.9, or '('",
                     token.position, self.text)

    def parse_operator(self) -> tuple[str, int]:
        token = self.current
        if token.kind == "op":
            self.advance()
            return str(token.value), token.position
        if self.is_keyword("LIKE", "ILIKE", "IN"):
            self.advance()
            return str(token.value), token.position
        if self.is_keyword("NOT"):
            self.advance()
            if self.is_keyword("LIKE", "ILIKE", "IN"):
                return f"NOT {self.advance().value}", token.position
            raise _error("expected LIKE, ILIKE or IN after NOT", self.current.position, self.text)
        what = "the end of the filter" if token.kind == "end" else repr(token.text)
        raise _error(f"found {what}; expected an operator (=, !=, <, <=, >, >=, LIKE, ILIKE, IN, NOT IN)",
                     token.position, self.text)

    def parse_value(self) -> Any:
        token = self.current
        if token.kind in ("string", "number"):
            self.advance()
            return token.value
        what = "the end of the filter" if token.kind == "end" else repr(token.text)
        raise _error(f"found {what}; expected a value: a number or a quoted string such as 'random_forest'",
                     token.position, self.text)

    def parse_list(self) -> tuple[Any, ...]:
        if self.current.kind != "lparen":
            raise _error("expected '(' and a list of values after IN, such as ('a', 'b')", self.current.position,
                         self.text)
        self.advance()
        values = [self.parse_value()]
        while self.current.kind == "comma":
            self.advance()
            values.append(self.parse_value())
        if self.current.kind != "rparen":
            raise _error("expected ',' or ')' in the list of values", self.current.position, self.text)
        self.advance()
        return tuple(values)

    def parse_comparison(self) -> Comparison:
        ident = self.advance()
        entity, key = _split_identifier(ident, self.text)
        op, op_position = self.parse_operator()
        value: Any = self.parse_list() if op in ("IN", "NOT IN") else self.parse_value()
        return _check(Comparison(entity, key, op, value, ident.position), op_position, self.text)


def _check(node: Comparison, op_position: int, text: str) -> Comparison:
    values = node.value if isinstance(node.value, tuple) else (node.value,)
    numeric = all(isinstance(v, float) for v in values)
    kind = ATTRIBUTES[node.key][1] if node.entity == "attributes" else node.entity
    if kind in ("metrics", "number"):
        if node.op not in NUMERIC_OPS:
            raise _error(f"{node.entity}.{node.key} is a number and takes {', '.join(NUMERIC_OPS)}; got {node.op}",
                         op_position, text)
        if not numeric:
            raise _error(f"{node.entity}.{node.key} is a number; compare it with a number, not a string",
                         op_position, text)
        return node
    # strings: params, tags, string attributes
    if node.op in RANGE_OPS:
        if node.entity != "params" or not numeric:
            raise _error(
                f"{node.entity}.{node.key} is a string and takes {', '.join(STRING_OPS)}"
                + ("; a range needs a number" if node.entity == "params" else ""),
                op_position, text,
            )
        return node
    # Strings compare with strings: a number typed without quotes is read as its text (params.C = 1).
    text_values = tuple(v if isinstance(v, str) else _number_text(v) for v in values)
    if node.op in ("IN", "NOT IN"):
        return Comparison(node.entity, node.key, node.op, text_values, node.position)
    if node.op in ("LIKE", "ILIKE", "NOT LIKE", "NOT ILIKE") and not isinstance(node.value, str):
        raise _error(f"{node.op} needs a quoted pattern such as 'random%'", op_position, text)
    return Comparison(node.entity, node.key, node.op, text_values[0], node.position)


def _number_text(value: float) -> str:
    return str(int(value)) if value.is_integer() else repr(value)


def parse(text: str | None) -> Node | None:
    """Parse a filter; None for an empty one. Raises InvalidInput naming the column of a syntax error."""
    if text is None or not text.strip():
        return None
    if len(text) > 10_000:
        raise InvalidInput(f"filter is {len(text)} characters long; at most 10000 are allowed.", field=FIELD)
    return _Parser(text).parse()


def comparisons(node: Node | None) -> list[Comparison]:
    """Every comparison in the tree, left to right."""
    if node is None:
        return []
    if isinstance(node, Comparison):
        return [node]
    return [c for part in node.parts for c in comparisons(part)]


# --------------------------------------------------------------------------- Python evaluation


def _like_regex(pattern: str, *, ignore_case: bool) -> re.Pattern[str]:
    out = []
    for char in pattern:
        out.append(".*" if char == "%" else "." if char == "_" else re.escape(char))
    return re.compile("".join(out), re.DOTALL | (re.IGNORECASE if ignore_case else 0))


def _as_float(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(number) else number


def _lookup(node: Comparison, run: dict[str, Any]) -> Any:
    if node.entity == "attributes":
        return run.get(ATTRIBUTES[node.key][0])
    return (run.get(node.entity) or {}).get(node.key)


def _compare(op: str, left: Any, right: Any) -> bool:
    if op == "=":
        return bool(left == right)
    if op == "!=":
        return bool(left != right)
    if op == "<":
        return bool(left < right)
    if op == "<=":
        return bool(left <= right)
    if op == ">":
        return bool(left > right)
    return bool(left >= right)


def _match_comparison(node: Comparison, run: dict[str, Any]) -> bool:
    value = _lookup(node, run)
    if value is None:
        return False
    numeric = node.entity == "metrics" or (node.entity == "attributes" and ATTRIBUTES[node.key][1] == "number")
    if numeric or (node.entity == "params" and node.op in RANGE_OPS):
        number = _as_float(value)
        return number is not None and _compare(node.op, number, float(node.value))
    text = str(value)
    if node.op in ("IN", "NOT IN"):
        return (text in node.value) == (node.op == "IN")
    if node.op.endswith("LIKE"):
        found = _like_regex(node.value, ignore_case="ILIKE" in node.op).fullmatch(text) is not None
        return found != node.op.startswith("NOT")
    return _compare(node.op, text, node.value)


def matches(node: Node | None, run: dict[str, Any]) -> bool:
    """Whether one run matches. ``run`` has ``metrics``, ``params``, ``tags`` dicts and attribute keys."""
    if node is None:
        return True
    if isinstance(node, Comparison):
        return _match_comparison(node, run)
    if isinstance(node, And):
        return all(matches(part, run) for part in node.parts)
    return any(matches(part, run) for part in node.parts)


# --------------------------------------------------------------------------- SQL compilation


def _glob_pattern(pattern: str) -> str:
    """A LIKE pattern as a SQLite GLOB pattern (GLOB is case-sensitive, like MLflow's LIKE)."""
    out = []
    for char in pattern:
        if char == "%":
            out.append("*")
        elif char == "_":
            out.append("?")
        elif char in "*?[":
            out.append(f"[{char}]")
        else:
            out.append(char)
    return "".join(out)


def _sql_comparison(node: Comparison, dialect: str) -> Any:
    from sqlalchemy import and_, func, not_

    from workbench.db.models import RunProjection as R

    if node.entity == "attributes":
        column: Any = getattr(R, ATTRIBUTES[node.key][0])
        if ATTRIBUTES[node.key][1] == "number":
            return and_(column.is_not(None), _sql_op(node.op, column, node.value))
    elif node.entity == "metrics":
        column = R.metrics[node.key].as_float()
        return and_(column.is_not(None), _sql_op(node.op, column, node.value))
    elif node.entity == "params" and node.op in RANGE_OPS:
        column = R.params_num[node.key].as_float()
        return and_(column.is_not(None), _sql_op(node.op, column, node.value))
    else:
        column = getattr(R, node.entity)[node.key].as_string()
    present = column.is_not(None)
    if node.op in ("IN", "NOT IN"):
        found = column.in_(list(node.value))
        return and_(present, found if node.op == "IN" else not_(found))
    if node.op.endswith("LIKE"):
        if "ILIKE" in node.op:
            found = func.lower(column).like(func.lower(node.value))
        elif dialect == "sqlite":
            found = column.op("GLOB")(_glob_pattern(node.value))
        else:
            found = column.like(node.value)
        return and_(present, not_(found) if node.op.startswith("NOT") else found)
    return and_(present, _sql_op(node.op, column, node.value))


def _sql_op(op: str, column: Any, value: Any) -> Any:
    if op == "=":
        return column == value
    if op == "!=":
        return column != value
    if op == "<":
        return column < value
    if op == "<=":
        return column <= value
    if op == ">":
        return column > value
    return column >= value


def to_sql(node: Node | None, *, dialect: str) -> Any:
    """A SQLAlchemy condition over ``RunProjection`` (``true()`` for no filter)."""
    from sqlalchemy import and_, or_, true

    if node is None:
        return true()
    if isinstance(node, Comparison):
        return _sql_comparison(node, dialect)
    parts = [to_sql(part, dialect=dialect) for part in node.parts]
    return and_(*parts) if isinstance(node, And) else or_(*parts)
