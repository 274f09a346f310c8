"""A small, safe expression language for selections: parsed with ``ast``, never ``eval``'d.

Allowed: names (fields), numbers, ``and or not``, comparisons (chained too), ``+ - * / **
%``, bitwise ``& | ~``, and the functions abs, sqrt, log, exp, cosh, sinh. Evaluated
element-wise on NumPy arrays.

Examples:
    >>> import numpy as np
    >>> e = Expression("pt > 20 and abs(eta) < 2.5 and (jetId & 2) == 2")
    >>> sorted(e.names)
    ['eta', 'jetId', 'pt']
    >>> e.evaluate({"pt": np.array([10., 30.]), "eta": np.array([0., 1.]), "jetId": np.array([6, 6])})
    array([False,  True])
"""

from __future__ import annotations

import ast
import operator

import numpy as np

from jetlib.errors import ConfigError

__all__ = ["Expression"]

_BIN = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
    ast.Pow: operator.pow, ast.Mod: operator.mod, ast.BitAnd: operator.and_, ast.BitOr: operator.or_,
}  # fmt: skip
_CMP = {
    ast.Lt: operator.lt, ast.LtE: operator.le, ast.Gt: operator.gt, ast.GtE: operator.ge,
    ast.Eq: operator.eq, ast.NotEq: operator.ne,
}  # fmt: skip
_FUN = {"abs": np.abs, "sqrt": np.sqrt, "log": np.log, "exp": np.exp, "cosh": np.cosh, "sinh": np.sinh}


class Expression:
    def __init__(self, text: str, *, source: str = "expression"):
        self.text = text
        self.source = source
        try:
            self.tree = ast.parse(text, mode="eval").body
        except SyntaxError as err:
            raise ConfigError(f"cannot parse {text!r}: {err.msg}", source=source) from err
        self.names: set[str] = set()
        self._check(self.tree)

    def _check(self, node: ast.AST) -> None:
        if isinstance(node, ast.BoolOp | ast.Compare | ast.BinOp | ast.UnaryOp):
            pass
        elif isinstance(node, ast.Name):
            self.names.add(node.id)
            return
        elif isinstance(node, ast.Constant) and isinstance(node.value, int | float) and not isinstance(node.value, bool):
            return
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in _FUN and len(node.args) == 1 and not node.keywords:
            self._check(node.args[0])
            return
        else:
            raise ConfigError(f"{ast.unparse(node)!r} is not allowed in {self.text!r}", source=self.source)
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.operator | ast.boolop | ast.cmpop | ast.unaryop):
                if type(child) not in _BIN and type(child) not in _CMP and not isinstance(child, ast.And | ast.Or | ast.Not | ast.USub | ast.Invert | ast.UAdd):
                    raise ConfigError(f"operator {type(child).__name__} is not allowed in {self.text!r}", source=self.source)
                continue
            self._check(child)

    def evaluate(self, fields: dict[str, np.ndarray]) -> np.ndarray:
        missing = self.names - set(fields)
        if missing:
            raise ConfigError(
                f"unknown name {sorted(missing)[0]!r} in {self.text!r}; available: {', '.join(sorted(fields))}",
                source=self.source,
            )
        try:
            return np.asarray(self._eval(self.tree, fields))
        except (TypeError, ValueError, OverflowError) as err:  # e.g. `pt & 2` on float pT
            raise ConfigError(f"cannot evaluate {self.text!r} on these values: {err}", source=self.source) from None

    def _eval(self, node, f):
        if isinstance(node, ast.Name):
            return f[node.id]
        if isinstance(node, ast.Constant):
            return node.value
        if isinstance(node, ast.BoolOp):
            vals = [np.asarray(self._eval(v, f), dtype=bool) for v in node.values]
            out = vals[0]
            for v in vals[1:]:
                out = (out & v) if isinstance(node.op, ast.And) else (out | v)
            return out
        if isinstance(node, ast.UnaryOp):
            v = self._eval(node.operand, f)
            if isinstance(node.op, ast.Not):
                return ~np.asarray(v, dtype=bool)
            if isinstance(node.op, ast.Invert):
                return ~v
            return -v if isinstance(node.op, ast.USub) else v
        if isinstance(node, ast.BinOp):
            left, right = self._eval(node.left, f), self._eval(node.right, f)
            if isinstance(node.op, ast.Pow) and np.ndim(left) == 0 and np.ndim(right) == 0:
                # in floating point: Python's integer power of two constants (9**9**9) runs for
                # ever, where a float overflows at once (OverflowError, named above)
                return float(left) ** float(right)
            return _BIN[type(node.op)](left, right)
        if isinstance(node, ast.Compare):
            left = self._eval(node.left, f)
            out = None
            for op, comp in zip(node.ops, node.comparators):
                right = self._eval(comp, f)
                r = _CMP[type(op)](left, right)
                out = r if out is None else (out & r)
                left = right
            return out
        if isinstance(node, ast.Call):
            return _FUN[node.func.id](self._eval(node.args[0], f))
        raise AssertionError(node)  # unreachable: _check rejected it
