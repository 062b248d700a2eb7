"""Ctrip / Trip.com: OpenTravel XML (2003/05), ARI pushed by us, bookings pushed to us."""

from adapters.ctrip.client import CtripAdapter

__all__ = ["CtripAdapter"]
