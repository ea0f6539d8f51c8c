"""Sources: where observations come from (SNMP poller, capture ring, active sweeps, local interfaces)."""
