"""SNMP: the client (pysnmp), the MIB tables it uses, and the per-device-type modules."""
