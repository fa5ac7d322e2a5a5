"""Real servers + real Envoy + filters, and assertions on the stats Envoy emits."""

from .lab import Lab

__all__ = ["Lab"]
