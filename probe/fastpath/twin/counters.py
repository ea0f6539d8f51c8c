"""The twin of probe/fastpath/kernels/counters.pxi: the specification itself, which lives with the SNMP
source it defines (probe/sources/snmp/counters.py)."""
from probe.sources.snmp.counters import counter_deltas

__all__ = ["counter_deltas"]
