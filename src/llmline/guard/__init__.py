"""Governance of the gateway: who may call what (API keys, roles, scopes)."""

from __future__ import annotations

from llmline.guard.keys import ROLES, ApiKeyInfo, KeyStore, Role, parse_duration

__all__ = ["ROLES", "ApiKeyInfo", "KeyStore", "Role", "parse_duration"]
