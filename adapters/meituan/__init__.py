"""Meituan: JSON with MWS header signing (modelled wire format), orders pushed to us."""

from adapters.meituan.client import MeituanAdapter

__all__ = ["MeituanAdapter"]
