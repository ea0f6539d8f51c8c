"""State: what the probe remembers between samples and across restarts (series, inventory, ledger)."""
