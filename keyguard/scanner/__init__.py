"""Finding Anthropic keys in files, staged changes and git history. Standard library only.

``run_scan(ScanOptions(...))`` is the one entry point; ``keyguard.cli.scan`` and the
``keyguard-scan`` hook (``keyguard.scanner.hook``) wrap it.
"""
