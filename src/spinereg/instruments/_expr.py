"""A small, safe expression language for value-set model terms.

Value-set files describe non-additive terms (``n3 >= 1``, ``max(n2 - 1, 0) ** 2``)
as expressions.  They are parsed with :mod:`ast`, checked against a whitelist of
node types and evaluated vectorised with numpy over every health state.  No
Python code from a data file is ever executed.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Mapping

import numpy as np
import numpy.typing as npt

from spinereg._errors import DataFileError

FloatArray = npt.NDArray[np.float64]

_BINOPS: dict[type[ast.operator], Callable[[FloatArray, FloatArray], FloatArray]] = {
    ast.Add: np.add,
    ast.Sub: np.subtract,
    ast.Mult: np.multiply,
    ast.Div: np.divide,
    ast.Pow: np.power,
}
_CMPOPS: dict[type[ast.cmpop], Callable[[FloatArray, FloatArray], npt.NDArray[np.bool_]]] = {
    ast.Eq: np.equal,
    ast.NotEq: np.not_equal,
    ast.Lt: np.less,
    ast.LtE: np.less_equal,
    ast.Gt: np.greater,
    ast.GtE: np.greater_equal,
}


def _where(c: FloatArray, a: FloatArray, b: FloatArray) -> FloatArray:
    return np.where(c != 0, a, b)


_FUNCS: dict[str, Callable[..., FloatArray]] = {
    "max": np.maximum,
    "min": np.minimum,
    "abs": np.abs,
    "exp": np.exp,
    "log": np.log,
    "where": _where,
}
_NARGS = {"max": 2, "min": 2, "abs": 1, "exp": 1, "log": 1, "where": 3}


def evaluate(expr: str, variables: Mapping[str, FloatArray | float], *, where: str = "") -> FloatArray:
    """Evaluate ``expr`` over arrays of ``variables``.

    Parameters
    ----------
    expr : str
        The expression (see ``docs/valueset-format.md``).
    variables : mapping
        Names available to the expression; arrays broadcast together.
    where : str
        Names the data file, for error messages.

    Returns
    -------
    numpy.ndarray
        float64 result; comparisons and ``and``/``or``/``not`` yield 1.0 or 0.0.
    """
    try:
        tree = ast.parse(expr, mode="eval")
    except SyntaxError as exc:
        raise DataFileError(f"{where}: cannot parse expression {expr!r}: {exc.msg}") from None

    def ev(node: ast.AST) -> FloatArray:
        if isinstance(node, ast.Expression):
            return ev(node.body)
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) \
                and not isinstance(node.value, bool):
            return np.asarray(float(node.value))
        if isinstance(node, ast.Name):
            if node.id not in variables:
                raise DataFileError(
                    f"{where}: unknown name {node.id!r} in expression {expr!r}; "
                    f"known: {', '.join(sorted(variables))}"
                )
            return np.asarray(variables[node.id], dtype=np.float64)
        if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
            return _BINOPS[type(node.op)](ev(node.left), ev(node.right))
        if isinstance(node, ast.UnaryOp):
            operand = ev(node.operand)
            if isinstance(node.op, ast.USub):
                return np.negative(operand)
            if isinstance(node.op, ast.UAdd):
                return operand
            if isinstance(node.op, ast.Not):
                return np.asarray(operand == 0, dtype=np.float64)
        if isinstance(node, ast.BoolOp):
            values = [ev(v) != 0 for v in node.values]
            acc = values[0]
            for v in values[1:]:
                acc = (acc & v) if isinstance(node.op, ast.And) else (acc | v)
            return np.asarray(acc, dtype=np.float64)
        if isinstance(node, ast.Compare):
            left = ev(node.left)
            result: npt.NDArray[np.bool_] | None = None
            for op, comp in zip(node.ops, node.comparators, strict=True):
                if type(op) not in _CMPOPS:
                    break
                right = ev(comp)
                part = _CMPOPS[type(op)](left, right)
                result = part if result is None else (result & part)
                left = right
            else:
                return np.asarray(result, dtype=np.float64)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) \
                and node.func.id in _FUNCS and not node.keywords:
            name = node.func.id
            if len(node.args) != _NARGS[name]:
                raise DataFileError(
                    f"{where}: {name}() takes {_NARGS[name]} argument(s) in {expr!r}"
                )
            with np.errstate(divide="ignore", invalid="ignore"):
                value: FloatArray = np.asarray(_FUNCS[name](*[ev(a) for a in node.args]),
                                               dtype=np.float64)
            return value
        raise DataFileError(
            f"{where}: expression {expr!r} uses {type(node).__name__}, which the "
            "value-set expression language does not allow"
        )

    return np.asarray(ev(tree), dtype=np.float64)
