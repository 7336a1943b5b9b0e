"""Keyless: move environments from static keys to Workload Identity Federation, and keep the
federation safe. ``config`` parses ``[environments.X.federation]`` (stdlib only); ``api`` talks
to the WIF Admin API with an ``org:admin`` OAuth token; ``plan``/``apply``/``verify``/``retire``
are the steps of a migration; ``providers`` knows the shared issuers and their tenant pins."""
