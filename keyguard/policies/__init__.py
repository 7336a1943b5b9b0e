"""Built-in policies (package data)."""
