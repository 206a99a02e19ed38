"""The defining sum printed in a worked solution: its index expressions for every stride and
dilation, evaluated against the numbers of the solution.

The solution prints ``corr(I, F)[i, j] = sum_{m=0..kH-1, n=0..kW-1} I[s0 i+d0 m, s1 j+d1 n]*F[m, n]``
(a factor 1 left out).  The expected line is built here from that definition, and the
formula, read back from the text and evaluated on the input with plain loops, must give the
stage's output.
"""

import re

import numpy as np
import pytest

from cnnlab.explain import Conv, explain, render


def _index(stride, out, dilation, tap):
    a = out if stride == 1 else f"{stride}{out}"
    b = tap if dilation == 1 else f"{dilation}{tap}"
    return f"{a}+{b}"


def _evaluate(expression, values):
    """``'2i+3m'`` with ``values = {'i': 1, 'm': 2}`` -> 8, read term by term."""
    total = 0
    for term in expression.split("+"):
        match = re.fullmatch(r"(\d*)([a-z])", term.strip())
        assert match, f"unexpected index term {term!r} in {expression!r}"
        total += int(match.group(1) or 1) * values[match.group(2)]
    return total


GEOMETRIES = [((1, 1), (1, 1)), ((2, 1), (1, 1)), ((1, 2), (1, 1)), ((1, 1), (2, 1)), ((1, 1), (1, 3)),
              ((2, 3), (2, 1)), ((3, 1), (1, 2))]


@pytest.mark.parametrize("channels", [1, 2])
@pytest.mark.parametrize(("stride", "dilation"), GEOMETRIES, ids=[f"s{s}d{d}" for s, d in GEOMETRIES])
def test_defining_sum_has_the_index_expressions_of_the_geometry(stride, dilation, channels):
    rng = np.random.default_rng([*stride, *dilation, channels])
    kh, kw = 2, 3
    shape = (channels, 9, 10) if channels > 1 else (9, 10)
    x = rng.integers(-5, 6, size=shape)
    filt = rng.integers(-3, 4, size=(channels, kh, kw) if channels > 1 else (kh, kw))
    sol = explain(x, [Conv(filt, stride=stride, dilation=dilation)])
    text = render(sol, "text")
    rows = _index(stride[0], "i", dilation[0], "m")
    cols = _index(stride[1], "j", dilation[1], "n")
    lead = "c, " if channels > 1 else ""
    ranges = (f"c=0..{channels - 1}, " if channels > 1 else "") + f"m=0..{kh - 1}, n=0..{kw - 1}"
    corr_line = f"corr(I, F)[i, j] = sum_{{{ranges}}} I[{lead}{rows}, {cols}]*F[{lead}m, n]"
    conv_line = (f"convolve(I, F)[i, j] = sum_{{{ranges}}} I[{lead}{rows}, {cols}]*F[{lead}{kh - 1}-m, "
                 f"{kw - 1}-n] = corr(I, flip(F))[i, j]")
    lines = [line.strip() for line in text.splitlines()]
    assert corr_line in lines, "\n".join(line for line in lines if "sum_" in line)
    assert conv_line in lines

    # read the printed window indices back and evaluate the sum with loops
    printed = re.search(r"corr\(I, F\)\[i, j\] = sum_\{[^}]*\} I\[(?:c, )?([^,\]]+), ([^\]]+)\]", text)
    row_expr, col_expr = printed.group(1), printed.group(2)
    x3 = x.reshape(channels, 9, 10)
    f3 = filt.reshape(channels, kh, kw)
    (stage,) = sol.stages
    output = np.asarray(stage.output, dtype=np.int64)[0]
    for i in range(output.shape[0]):
        for j in range(output.shape[1]):
            value = 0
            for c in range(channels):
                for m in range(kh):
                    for n in range(kw):
                        r = _evaluate(row_expr, {"i": i, "m": m})
                        q = _evaluate(col_expr, {"j": j, "n": n})
                        value += int(x3[c, r, q]) * int(f3[c, m, n])
            assert value == output[i, j], (i, j)
