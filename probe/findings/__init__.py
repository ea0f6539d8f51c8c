"""Findings: detectors turn a window's aggregates into findings a technician acts on, one per episode."""
