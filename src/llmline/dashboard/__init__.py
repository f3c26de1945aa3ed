"""The web dashboard the gateway serves at ``/ui``."""
