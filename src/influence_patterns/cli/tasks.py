"""CLI commands (see influence_patterns.cli)."""
