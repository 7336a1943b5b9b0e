"""Anthropic Admin API: the client (httpx) and a local sandbox of the API."""

from keyguard.admin.client import AdminClient

__all__ = ["AdminClient"]
