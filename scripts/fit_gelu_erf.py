#!/usr/bin/env python3
"""Fits the polynomials of the vectorised erf used by the CPU GELU
(blocks/act_avx2.c) and reports their float32 error. Needs numpy only.

  erf(z)  = z * P(z^2)       for 0 <= z < 1
  erfc(z) = exp(Q(z))        for 1 <= z <= ZMAX (0 beyond)

Fits are Chebyshev least squares in double against math.erf / math.erfc,
converted to monomials for Horner evaluation. Coefficients are rounded to
float32 one at a time, lowest degree first, refitting the rest to absorb each
rounding (otherwise rounding alone costs about 1 ulp). The error is then
measured by evaluating in float32 with fused multiply-adds, as the kernel does.

  /usr/bin/python3 scripts/fit_gelu_erf.py
"""
import math

import numpy as np
from numpy.polynomial import Chebyshev, Polynomial

DEG_P, DEG_Q, ZMAX = 6, 10, 5.0


def fit(fn, lo, hi, deg, n=8000):
    x = (np.cos(np.linspace(0, np.pi, n)) * 0.5 + 0.5) * (hi - lo) + lo
    c = Chebyshev.fit(x, fn(x), deg, domain=[lo, hi])
    return c.convert(kind=Polynomial, domain=[lo, hi], window=[lo, hi]).coef


def fit_rounded(fn, lo, hi, deg, n=8000):
    """Monomial coefficients in float32, each rounding absorbed by refitting the higher ones."""
    x = (np.cos(np.linspace(0, np.pi, n)) * 0.5 + 0.5) * (hi - lo) + lo
    y = fn(x)
    coef = []
    for k in range(deg + 1):
        r = y - sum(c * x**j for j, c in enumerate(coef))
        basis = np.stack([x**j for j in range(k, deg + 1)], axis=1)
        sol, *_ = np.linalg.lstsq(basis, r, rcond=None)
        coef.append(float(np.float32(sol[0])))
    return np.array(coef)


def horner_fma32(coef, x):
    """float32 Horner with a single rounding per step (fma), computed exactly in double."""
    x = x.astype(np.float32)
    r = np.full_like(x, np.float32(coef[-1]))
    for c in coef[-2::-1]:
        r = (r.astype(np.float64) * x.astype(np.float64) + np.float64(np.float32(c))).astype(np.float32)
    return r


erf = np.vectorize(math.erf)
erfc = np.vectorize(math.erfc)
p = fit_rounded(lambda t: erf(np.sqrt(t)) / np.sqrt(t), 1e-14, 1.0, DEG_P)
q = fit(lambda z: np.log(erfc(z)), 1.0, ZMAX, DEG_Q)  # monomial refits are ill-conditioned on [1, 5]

z = np.linspace(1e-6, 1.0, 400001).astype(np.float32)
e = (z.astype(np.float64) * horner_fma32(p, z * z).astype(np.float64)).astype(np.float32)
ref = erf(z.astype(np.float64))
ulp = np.spacing(ref.astype(np.float32))
print(f"erf  on [0,1):  max abs err {np.max(np.abs(e - ref)):.3g}, max {np.max(np.abs(e - ref) / ulp):.2f} ulp")
z = np.linspace(1.0, ZMAX, 400001).astype(np.float32)
c = np.exp(horner_fma32(q, z).astype(np.float64)).astype(np.float32)
ref = erfc(z.astype(np.float64))
print(f"erfc on [1,{ZMAX:g}]: max rel err {np.max(np.abs(c - ref) / ref):.3g}; "
      f"erf abs err {np.max(np.abs((1 - c.astype(np.float64)) - (1 - ref))):.3g}")
for name, coef in (("P", p), ("Q", q)):
    print(f"{name} (lowest degree first):")
    print("    " + ", ".join(f"{np.float32(v)!r:}f".replace("np.float32(", "").replace(")", "") for v in coef))
