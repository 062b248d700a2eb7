"""The adapter contract shared by every channel: types, errors, transport, sandbox base."""

from adapters.base.contract import (
    AriUpdate,
    BookingReceiver,
    BookingRevision,
    Capabilities,
    ChannelAdapter,
    ChannelSettings,
    Confirmation,
    Delivery,
    Exchange,
    Guest,
    ItemResult,
    NightPrice,
    Price,
    PushOutcome,
    Stay,
)
from adapters.base.errors import (
    AuthError,
    ChannelError,
    FatalError,
    ParseError,
    RateLimitedError,
    RetriableError,
)

__all__ = [
    "AriUpdate", "AuthError", "BookingReceiver", "BookingRevision", "Capabilities",
    "ChannelAdapter", "ChannelError", "ChannelSettings", "Confirmation", "Delivery",
    "Exchange", "FatalError", "Guest", "ItemResult", "NightPrice", "ParseError", "Price",
    "PushOutcome", "RateLimitedError", "RetriableError", "Stay",
]
