#!/usr/bin/env python3
"""Restates MambaOut's parameter and MAC counts (fvcore convention: conv and
linear MACs plus LayerNorm at 5 per element; and without LayerNorm, the
'gemm' convention) straight from the architecture, independently of the C
code. Its output must equal what test_accounting pins and `mixerlab list`
prints.

    python3 scripts/accounting_restated.py
"""
import math
def cnt(depths,dims,res=224,ln=True,B=1):
    m=0;p=0
    def conv(cin,cout,H,k=3,s=2,g=1):
        nonlocal m,p
        Ho=math.ceil(H/2) if s==2 else H
        m+=Ho*Ho*cout*(cin//g)*k*k; p+=cout*(cin//g)*k*k+cout; return Ho
    def lnf(c,L):
        nonlocal m,p
        if ln: m+=5*c*L
        p+=2*c
    def lin(i,o,L):
        nonlocal m,p
        m+=L*i*o; p+=i*o+o
    H=conv(3,dims[0]//2,res); lnf(dims[0]//2,H*H)
    H=conv(dims[0]//2,dims[0],H); lnf(dims[0],H*H)
    for s,(d,C) in enumerate(zip(depths,dims)):
        if s>0:
            H=conv(dims[s-1],C,H); lnf(C,H*H)
        L=H*H; hd=int(8/3*C)
        for j in range(d):
            lnf(C,L); lin(C,2*hd,L); 
            m+=L*C*49; p+=C*49+C
            lin(hd,C,L)
    C=dims[-1]; lnf(C,1); lin(C,4*C,1); lnf(4*C,1); lin(4*C,1000,1)
    return p,m
for n,d,w in [("femto",(3,3,9,3),(48,96,192,288)),("kobe",(3,3,15,3),(48,96,192,288)),("tiny",(3,3,9,3),(96,192,384,576)),("small",(3,4,27,3),(96,192,384,576)),("base",(3,4,27,3),(128,256,512,768))]:
    print(n,cnt(d,w),cnt(d,w,ln=False)[1])
print(cnt((3,3,9,3),(96,192,384,576),384)[1], cnt((3,3,9,3),(48,96,192,288),1024)[1])
