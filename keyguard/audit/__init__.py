"""Audit: every environment's key against its policy, and the keys nobody manages."""

from keyguard.audit.collect import AdminReader, run_audit
from keyguard.audit.model import AuditReport, EnvironmentReport, UnmanagedKey, Verdict

__all__ = [
    "AdminReader",
    "AuditReport",
    "EnvironmentReport",
    "UnmanagedKey",
    "Verdict",
    "run_audit",
]
