"""Tool-calling agents against any deployment."""
