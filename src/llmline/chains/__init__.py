"""Declarative chains: prompt → model → parse → tool steps from YAML."""
