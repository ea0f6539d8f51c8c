"""SNMP: the client (our BER codec and USM, engine.py), the MIB tables it uses, and the per-device-type modules."""
