"""Read a signal typed by a person, such as ``exp(-t)*Heaviside(t)``, into a SymPy expression safely.

Nothing is evaluated as Python: the text is parsed by :func:`ast.parse` into a syntax tree, and the
tree is walked here, node by node.  Only numbers, the variable, a few named constants and
parameters, arithmetic (``+ - * / **`` and ``^``) and calls of the functions in :data:`FUNCTIONS`
are accepted; attribute access, subscripts, keywords, strings, dunder names, lambdas and every
other construct are refused with a :class:`ValueError` naming what was found.
"""

from __future__ import annotations

import ast
import re
from typing import Any

from cnnlab.explain._piecewise import import_sympy

MAX_LENGTH = 500
"""The longest signal text accepted."""

MAX_EXPONENT = 64
"""The largest constant exponent accepted (``t**1000000`` would take SymPy a long time)."""

MAX_NODES = 200
"""The most syntax-tree nodes accepted."""


def _functions(sp: Any) -> dict[str, Any]:
    from cnnlab.explain.continuous import rect

    def tri(x: Any) -> Any:
        return sp.Piecewise((1 - sp.Abs(x), sp.Abs(x) <= 1), (0, True))

    return {
        "rect": rect, "tri": tri, "Heaviside": sp.Heaviside, "step": sp.Heaviside, "u": sp.Heaviside,
        "exp": sp.exp, "sin": sp.sin, "cos": sp.cos, "tan": sp.tan, "sqrt": sp.sqrt, "log": sp.log,
        "Abs": sp.Abs, "abs": sp.Abs, "sign": sp.sign, "Max": sp.Max, "Min": sp.Min,
        "max": sp.Max, "min": sp.Min, "sinc": sp.sinc, "gauss": lambda x: sp.exp(-x**2 / 2),
    }


FUNCTIONS = ("rect", "tri", "Heaviside", "step", "u", "exp", "sin", "cos", "tan", "sqrt", "log",
             "Abs", "abs", "sign", "Max", "Min", "max", "min", "sinc", "gauss")
"""The functions a signal may call."""

CONSTANTS = ("pi", "E")
PARAMETERS = ("a", "b", "c", "k", "w", "T")
"""Names, besides the variable, that stand for a positive real parameter."""


def parse_signal(text: str, variable: str = "t", *, name: str = "signal") -> tuple[Any, Any]:
    """``(expression, symbol)``: the signal ``text`` in the real variable ``variable``.

    Parameters
    ----------
    text : str
        Such as ``"rect(t)"``, ``"exp(-t)*Heaviside(t)"`` or ``"t^2*rect(t/2)"``.
    variable : str, default 't'
    name : str, default 'signal'
        The argument's name in error messages.

    Returns
    -------
    (sympy.Expr, sympy.Symbol)

    Raises
    ------
    TypeError
        If ``text`` is not a str.
    ValueError
        For text that is not an expression of the accepted form: unknown names or functions,
        attribute access, subscripts, keywords, strings, too long or too deep.

    Examples
    --------
    >>> expr, t = parse_signal("exp(-t)*Heaviside(t)")
    >>> expr
    exp(-t)*Heaviside(t)
    >>> parse_signal("__import__('os').system('echo hi')")
    Traceback (most recent call last):
    ...
    ValueError: signal: '__import__' is not allowed: names starting with '_' are refused
    """
    if not isinstance(text, str):
        raise TypeError(f"{name}: expected a str, got {type(text).__name__}")
    if len(text) > MAX_LENGTH:
        raise ValueError(f"{name}: the text is {len(text)} characters long; the limit is {MAX_LENGTH}")
    if not text.strip():
        raise ValueError(f"{name}: the text is empty")
    if "_" in text:
        word = re.search(r"\w*_\w*", text).group(0)
        raise ValueError(f"{name}: {word!r} is not allowed: names starting with '_' are refused")
    try:
        tree = ast.parse(text.strip().replace("^", "**"), mode="eval")
    except SyntaxError as exc:
        raise ValueError(f"{name}: {text!r} is not an expression ({exc.msg})") from None
    if sum(1 for _ in ast.walk(tree)) > MAX_NODES:
        raise ValueError(f"{name}: the expression has more than {MAX_NODES} parts")
    sp = import_sympy()
    t = sp.Symbol(variable, real=True)
    names = {variable: t, "pi": sp.pi, "E": sp.E}
    names.update({p: sp.Symbol(p, positive=True) for p in PARAMETERS if p != variable})
    return _Builder(sp, name, names, _functions(sp)).build(tree.body), t


class _Builder:
    """Turns an accepted syntax tree into SymPy objects, refusing everything else."""

    def __init__(self, sp: Any, name: str, names: dict, functions: dict) -> None:
        self.sp, self.name, self.names, self.functions = sp, name, names, functions

    def refuse(self, what: str) -> ValueError:
        return ValueError(f"{self.name}: {what} is not allowed; use numbers, {self._variables()}, "
                          f"+ - * / ^ and the functions {', '.join(FUNCTIONS)}")

    def _variables(self) -> str:
        return "the variable, " + ", ".join(CONSTANTS) + " and the parameters " + ", ".join(PARAMETERS)

    def build(self, node: ast.AST) -> Any:
        sp = self.sp
        if isinstance(node, ast.Constant):
            if isinstance(node.value, bool) or not isinstance(node.value, (int, float)):
                raise self.refuse(f"the constant {node.value!r}")
            return sp.Rational(str(node.value)) if isinstance(node.value, float) else sp.Integer(node.value)
        if isinstance(node, ast.Name):
            if node.id not in self.names:
                raise self.refuse(f"the name {node.id!r}")
            return self.names[node.id]
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
            value = self.build(node.operand)
            return -value if isinstance(node.op, ast.USub) else value
        if isinstance(node, ast.BinOp):
            left, right = self.build(node.left), self.build(node.right)
            if isinstance(node.op, ast.Add):
                return left + right
            if isinstance(node.op, ast.Sub):
                return left - right
            if isinstance(node.op, ast.Mult):
                return left * right
            if isinstance(node.op, ast.Div):
                return left / right
            if isinstance(node.op, ast.Pow):
                if right.is_number and abs(float(right)) > MAX_EXPONENT:
                    raise ValueError(f"{self.name}: the exponent {right} is larger than {MAX_EXPONENT}")
                return left**right
            raise self.refuse(f"the operator {type(node.op).__name__}")
        if isinstance(node, ast.Call):
            if not isinstance(node.func, ast.Name):
                raise self.refuse("calling anything but a named function (attribute access)")
            if node.func.id not in self.functions:
                raise self.refuse(f"the function {node.func.id!r}")
            if node.keywords:
                raise self.refuse("a keyword argument")
            if not node.args or len(node.args) > 2:
                raise ValueError(f"{self.name}: {node.func.id}() takes 1 or 2 arguments, got {len(node.args)}")
            return self.functions[node.func.id](*(self.build(a) for a in node.args))
        if isinstance(node, ast.Attribute):
            raise self.refuse("attribute access")
        if isinstance(node, ast.Subscript):
            raise self.refuse("subscripting")
        raise self.refuse(f"a {type(node).__name__} expression")
