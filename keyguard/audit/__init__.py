"""Audit: every environment's key against its policy, and the keys nobody manages."""

from keyguard.audit.collect import AdminReader, run_audit
from keyguard.audit.model import AuditReport, EnvironmentReport, Reason, UnmanagedKey, Verdict

__all__ = [
    "AdminReader",
    "AuditReport",
    "EnvironmentReport",
    "Reason",
    "UnmanagedKey",
    "Verdict",
    "run_audit",
]
