"""The `tradeguard` command line (typer + rich)."""
