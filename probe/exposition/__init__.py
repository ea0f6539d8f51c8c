"""Exposition: Prometheus collectors, the HTTP API, and reports."""
