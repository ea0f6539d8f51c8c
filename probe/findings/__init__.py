"""Findings: what the probe tells the MSP about the client's network (detectors, ledger)."""
