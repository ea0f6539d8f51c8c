"""Findings: detectors turn what the sources saw into facts a technician acts on (raised once per episode)."""
