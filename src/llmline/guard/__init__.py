"""Governance of the gateway: who may call what (API keys, roles, scopes),
how much (rate limits, budgets, stream caps) and what may pass (guardrail
scanners and their policies)."""

from __future__ import annotations

from llmline.guard.guardrails import Guardrails
from llmline.guard.keys import ROLES, ApiKeyInfo, KeyStore, Role, parse_duration
from llmline.guard.limits import (
    MemoryLedger,
    MemoryRateLimiter,
    RedisLedger,
    RedisRateLimiter,
    Take,
)
from llmline.guard.policy import Decision, GuardPolicy, ScannerPolicy, Verdict
from llmline.guard.quota import Limits, LimitsPolicy, Quota
from llmline.guard.rbac import allowed, require
from llmline.guard.scanners import create_scanner, scanner_names

__all__ = [
    "ROLES",
    "ApiKeyInfo",
    "Decision",
    "GuardPolicy",
    "Guardrails",
    "KeyStore",
    "Limits",
    "LimitsPolicy",
    "MemoryLedger",
    "MemoryRateLimiter",
    "Quota",
    "RedisLedger",
    "RedisRateLimiter",
    "Role",
    "ScannerPolicy",
    "Take",
    "Verdict",
    "allowed",
    "create_scanner",
    "parse_duration",
    "require",
    "scanner_names",
]
