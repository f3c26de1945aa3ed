"""Tests of llmline.models (a package: its module names clash with other test folders)."""
