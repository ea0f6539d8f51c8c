"""The pure-Python twin of the compiled fast path (probe/_fastpath.pyx): same names, same signatures,
same answers.

Like the compiled module (one include file per kernel family under probe/fastpath/kernels/), it is put
together from one module per family, each the plain-numpy specification of its kernel.
"""
from probe.fastpath.twin import aggregate, counters, parse, ring, score

__all__: list[str] = []
for _module in (counters, parse, aggregate, score, ring):
    for _name in _module.__all__:
        globals()[_name] = getattr(_module, _name)
        __all__.append(_name)
del _module, _name
