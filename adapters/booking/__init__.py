"""Booking.com: OpenTravel XML (2003/05 namespace), bookings pulled and acknowledged."""

from adapters.booking.client import BookingAdapter

__all__ = ["BookingAdapter"]
