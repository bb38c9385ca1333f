"""Probe targets computed from recorded ground-truth labels; the catalogue is data
(``configs/features.yaml``).

A feature's ``value`` and optional ``where`` are expressions over label columns in a small
language parsed with :mod:`ast` and walked node by node (nothing is ``eval``-ed): numbers,
label names, ``+ - * /``, unary ``-``, comparisons, ``and or not`` and the functions in
:data:`FUNCTIONS`. NaN (an absent object) propagates through every op, comparisons included,
and rows whose value is NaN or infinite, or whose ``where`` is not true, are left out.
"""

from __future__ import annotations

import ast
import difflib
import operator
import re
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import yaml

from configs import CONFIG_DIR
from interp.errors import InterpError

CATALOGUE = CONFIG_DIR / "features.yaml"
KINDS = ("classification", "regression")


class ProbeError(InterpError, ValueError):
    """Bad probe input (feature, labels, layers, options); the message says what to use."""


def _nan_where(result: np.ndarray, *args: np.ndarray) -> np.ndarray:
    """``result`` as float with NaN wherever any argument is NaN."""
    out = np.asarray(result, dtype=np.float64)
    bad = np.zeros(out.shape, dtype=bool)
    for a in args:
        bad |= np.isnan(a)
    return np.where(bad, np.nan, out)


def _logical(fn):
    return lambda *a: _nan_where(fn(*(np.nan_to_num(x) != 0 for x in a)), *a)


FUNCTIONS = {
    "abs": np.abs,
    "min": np.minimum,
    "max": np.maximum,
    "hypot": np.hypot,
    "dist": lambda x1, y1, x2, y2: np.hypot(x1 - x2, y1 - y2),
    "where": lambda c, a, b: _nan_where(np.where(np.nan_to_num(c) != 0, a, b), c),
}
_BINARY = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
           ast.Div: operator.truediv}
_COMPARE = {ast.Lt: operator.lt, ast.LtE: operator.le, ast.Gt: operator.gt, ast.GtE: operator.ge,
            ast.Eq: operator.eq, ast.NotEq: operator.ne}
_BOOL = {ast.And: _logical(np.logical_and), ast.Or: _logical(np.logical_or)}
_ARITY = {"abs": 1, "min": 2, "max": 2, "hypot": 2, "dist": 4, "where": 3}


def parse(expr: str) -> ast.expr:
    """Parse and validate an expression; raises :class:`ProbeError` on anything outside the
    language."""
    try:
        tree = ast.parse(str(expr), mode="eval").body
    except SyntaxError as e:
        raise ProbeError(f"cannot parse feature expression {expr!r}: {e.msg}") from None
    for node in ast.walk(tree):
        ok = isinstance(node, (ast.Name, ast.Load, ast.BinOp, ast.UnaryOp, ast.USub, ast.Not,
                               ast.Compare, ast.BoolOp, *_BINARY, *_COMPARE, *_BOOL))
        ok |= isinstance(node, ast.Constant) and isinstance(node.value, (int, float))
        if isinstance(node, ast.Call):
            name = getattr(node.func, "id", None)
            if name not in FUNCTIONS or node.keywords or len(node.args) != _ARITY[name]:
                raise ProbeError(f"in {expr!r}: unknown function or wrong arguments in "
                                 f"{ast.unparse(node)!r}; functions: "
                                 + ", ".join(f"{f}/{n}" for f, n in _ARITY.items()))
            ok = True
        if not ok:
            raise ProbeError(f"in {expr!r}: {ast.unparse(node)!r} is not allowed; use numbers, "
                             "label names, + - * /, comparisons, and/or/not and "
                             + ", ".join(FUNCTIONS))
    return tree


def names(tree: ast.expr) -> set[str]:
    """Label names an expression reads."""
    return {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)} - set(FUNCTIONS)


def evaluate(tree: ast.expr, labels: dict[str, np.ndarray]) -> np.ndarray:
    """Evaluate a parsed expression over label columns (float64, NaN-propagating)."""
    def ev(node: ast.expr) -> np.ndarray:
        if isinstance(node, ast.Constant):
            return np.float64(node.value)
        if isinstance(node, ast.Name):
            return np.asarray(labels[node.id], dtype=np.float64)
        if isinstance(node, ast.BinOp):
            with np.errstate(divide="ignore", invalid="ignore"):
                return _BINARY[type(node.op)](ev(node.left), ev(node.right))
        if isinstance(node, ast.UnaryOp):
            v = ev(node.operand)
            return -v if isinstance(node.op, ast.USub) else _logical(np.logical_not)(v)
        if isinstance(node, ast.BoolOp):
            vals = [ev(v) for v in node.values]
            out = vals[0]
            for v in vals[1:]:
                out = _BOOL[type(node.op)](out, v)
            return out
        if isinstance(node, ast.Compare):
            left, out = ev(node.left), None
            for op, right_node in zip(node.ops, node.comparators):
                right = ev(right_node)
                step = _nan_where(_COMPARE[type(op)](left, right), left, right)
                out = step if out is None else _BOOL[ast.And](out, step)
                left = right
            return out
        return FUNCTIONS[node.func.id](*(ev(a) for a in node.args))  # ast.Call (validated)
    return np.broadcast_to(ev(tree), np.shape(next(iter(labels.values())))).astype(np.float64)


@dataclass(frozen=True)
class Feature:
    """One probe target: ``value`` (and rows kept by ``where``) from label columns."""

    name: str
    description: str
    kind: str
    value: str
    where: str | None = None
    games: tuple[str, ...] = ()
    aliases: tuple[str, ...] = ()  # other names that select this feature

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ProbeError(f"feature {self.name!r}: kind must be one of {KINDS}, "
                             f"got {self.kind!r}")
        _ = self.labels  # parse now: a bad catalogue fails on load, not mid-run

    @cached_property
    def _trees(self) -> tuple[ast.expr, ast.expr | None]:
        return parse(self.value), parse(self.where) if self.where else None

    @property
    def labels(self) -> list[str]:
        """Label columns the feature needs."""
        return sorted(set().union(*(names(t) for t in self._trees if t is not None)))

    def compute(self, labels: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """``(y, keep)``: the feature per row and the rows it is defined on."""
        missing = [k for k in self.labels if k not in labels]
        if missing:
            raise ProbeError(f"feature {self.name!r} needs label(s) {', '.join(missing)}, which "
                             f"the recording lacks; it has: {', '.join(sorted(labels))}")
        value, where = self._trees
        y = evaluate(value, labels)
        keep = np.isfinite(y)
        if where is not None:
            keep &= np.nan_to_num(evaluate(where, labels)) != 0
        return y, keep


def load_catalogue(path: str | Path | None = None) -> dict[str, Feature]:
    """Features from a YAML file: the built-in catalogue, updated by ``path`` when given."""
    out: dict[str, Feature] = {}
    for p in [CATALOGUE] + ([Path(path)] if path else []):
        try:
            data = yaml.safe_load(Path(p).read_text())
        except (OSError, yaml.YAMLError) as e:
            raise ProbeError(f"cannot read feature catalogue {p}: {e}") from None
        entries = (data or {}).get("features") if isinstance(data, dict) else None
        if not isinstance(entries, dict):
            raise ProbeError(f"{p}: expected a mapping 'features: {{name: {{...}}}}'")
        for name, spec in entries.items():
            fields = {"description", "kind", "value", "where", "games", "aliases"}
            if (not isinstance(spec, dict) or set(spec) - fields
                    or not {"kind", "value"} <= set(spec)):
                raise ProbeError(f"{p}: feature {name!r} needs 'kind' and 'value' and may have "
                                 f"{sorted(fields)}")
            out[name] = Feature(name=str(name), description=str(spec.get("description", "")),
                                kind=spec["kind"], value=str(spec["value"]),
                                where=str(spec["where"]) if spec.get("where") else None,
                                games=tuple(map(str, _as_list(spec.get("games")))),
                                aliases=tuple(map(str, _as_list(spec.get("aliases")))))
    return out


def _as_list(value) -> list:
    """A YAML value that may be one item or a list of them (None: none)."""
    return [] if value is None else value if isinstance(value, list) else [value]


def _words(text: str) -> set[str]:
    """Lower-case words of a name or description, a plural 's' dropped (coins -> coin)."""
    return {w[:-1] if len(w) > 3 and w.endswith("s") else w
            for w in re.findall(r"[a-z]+", text.lower())}


def suggest(name: str, features: dict[str, Feature], n: int = 3) -> list[str]:
    """Feature names a user who typed ``name`` most likely means, best first: ranked by the
    words they share with it in their aliases, then names, then descriptions (ties in
    catalogue order, which lists a topic's main feature first), then close spellings."""
    words = _words(name)
    scored = []
    for i, f in enumerate(features.values()):
        hits = (len(words & _words(" ".join(f.aliases))), len(words & _words(f.name)),
                len(words & _words(f.description)))
        if any(hits):
            scored.append((tuple(-h for h in hits), i, f.name))
    close = difflib.get_close_matches(name, list(features), n=n, cutoff=0.5)
    return list(dict.fromkeys([f for *_, f in sorted(scored)] + close))[:n]


def get_feature(name: str, catalogue: str | Path | None = None) -> Feature:
    """A feature by name or alias; unknown names suggest the likeliest and list the rest."""
    features = load_catalogue(catalogue)
    alias = {a: f for f in features.values() for a in f.aliases}
    if name in features:
        return features[name]
    if name in alias:
        return alias[name]
    close = suggest(name, features)
    raise ProbeError(f"unknown feature {name!r}."
                     + (f" Did you mean {', '.join(close)}?" if close else "")
                     + f" Features: {', '.join(features)} (`interp probe --list-features`)")
