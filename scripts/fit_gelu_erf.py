#!/usr/bin/env python3
"""Fits the polynomials of the vectorised GELU used by the CPU (blocks/act_simd.c)
and reports their float32 error. Needs numpy only.

GELU(x) = x * Phi(x) and, with z = |x|/sqrt(2), Phi(-|x|) = erfc(z)/2. The kernel
computes h(z) = erfc(z)/2 in the form of Numerical Recipes' erfcc:

  t    = 1 / (1 + A*z)
  h(z) = t * exp(P(t) - z^2)      for 0 <= z <= ZMAX (0 beyond)

so Phi(x) is h(z) for negative x and 1 - h(z) for positive x: one polynomial and
one exp for both signs, with no cancellation on the negative side. The exp is
2^n * E(r), r = q - n*ln2 in [-ln2/2, ln2/2], E a degree-5 polynomial.

P and E are Chebyshev least-squares fits in double converted to monomials; A was
chosen by a scan for the smallest error at degree 6. The error is then measured
by evaluating in float32 with one rounding per fused multiply-add, as the kernel
does.

  /usr/bin/python3 scripts/fit_gelu_erf.py
"""
import math

import numpy as np
from numpy.polynomial import Chebyshev, Polynomial

DEG_P, DEG_E, ZMAX, A = 6, 5, 5.0, 0.37
LN2 = math.log(2.0)
erfc = np.vectorize(math.erfc)


def cheb_monomial(x, y, deg, lo, hi):
    c = Chebyshev.fit(x, y, deg, domain=[lo, hi])
    return c.convert(kind=Polynomial, domain=[lo, hi], window=[lo, hi]).coef


def nodes(lo, hi, n=20000):
    return (np.cos(np.linspace(0, np.pi, n)) * 0.5 + 0.5) * (hi - lo) + lo


def horner_fma32(coef, x):
    """float32 Horner with a single rounding per step (fma), computed exactly in double."""
    x = x.astype(np.float32)
    r = np.full_like(x, np.float32(coef[-1]))
    for c in coef[-2::-1]:
        r = (r.astype(np.float64) * x.astype(np.float64) + np.float64(np.float32(c))).astype(np.float32)
    return r


a = float(np.float32(A))
tmin = 1.0 / (1.0 + a * ZMAX)
z = nodes(0.0, ZMAX)
t = 1.0 / (1.0 + a * z)
p = cheb_monomial(t, np.log(0.5 * erfc(z) / t) + z * z, DEG_P, tmin, 1.0)
r = nodes(-LN2 / 2, LN2 / 2)
e = cheb_monomial(r, np.exp(r), DEG_E, -LN2 / 2, LN2 / 2)

zz = np.linspace(0.0, ZMAX, 400001).astype(np.float32)
t32 = (np.float32(1) / (np.float32(1) + np.float32(a) * zz)).astype(np.float32)
q = (horner_fma32(p, t32).astype(np.float64) - zz.astype(np.float64) ** 2).astype(np.float32)
n = np.round(q.astype(np.float64) / LN2)
rr = (q.astype(np.float64) - n * LN2).astype(np.float32)
h = (t32.astype(np.float64) * (horner_fma32(e, rr).astype(np.float64) * 2.0**n)).astype(np.float32)
ref = 0.5 * erfc(zz.astype(np.float64))
rg = np.linspace(-LN2 / 2, LN2 / 2, 100001)
print(f"exp polynomial on [-ln2/2, ln2/2]: max rel err {np.max(np.abs(np.polyval(e[::-1], rg) / np.exp(rg) - 1)):.3g}")
print(f"erfc(z)/2 on [0,{ZMAX:g}], float32: max rel err {np.max(np.abs(h - ref) / ref):.3g}")
print(f"A = {np.float32(a)!r}f".replace("np.float32(", "").replace(")", ""))
for name, coef in (("P", p), ("E", e)):
    print(f"{name} (lowest degree first):")
    print("    " + ", ".join(f"{np.float32(v)!r:}f".replace("np.float32(", "").replace(")", "") for v in coef))
