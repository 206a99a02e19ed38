"""The documented defaults of the pooling demonstrations: a 2x2 window, stride = window.

Checked against values worked by hand (the other tests always pass the window explicitly, so a
changed default went unnoticed; found by benchmarks/mutation.py).
"""

from fractions import Fraction

from cnnlab.explain.pooling_size import avg_pool_conv, max_pool_relu

X = [[1, 2, 0, 0], [3, 4, 1, 5]]


def test_avg_pool_conv_defaults_to_a_2x2_window_with_stride_2():
    ex = avg_pool_conv(X)
    # windows [[1, 2], [3, 4]] and [[0, 0], [1, 5]]: means 10/4 and 6/4
    assert [[Fraction(v) for v in row] for row in ex.output] == [[Fraction(5, 2), Fraction(3, 2)]]
    assert [[Fraction(v) for v in row] for row in ex.pooled] == [[Fraction(5, 2), Fraction(3, 2)]]
    assert ex.verified


def test_max_pool_relu_defaults_to_a_2x2_window_with_stride_2():
    ex = max_pool_relu(X)
    assert [[int(v) for v in row] for row in ex.pooled] == [[4, 5]]
    assert ex.verified
