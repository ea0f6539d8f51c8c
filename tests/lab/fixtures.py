"""Lab fixtures: see tests/lab/netns.py."""
