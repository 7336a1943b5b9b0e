"""keyguard: keeps Anthropic API keys from leaking, and keeps them fresh.

This module imports nothing: the pre-commit hook must start fast.
"""

__version__ = "0.1.0"
