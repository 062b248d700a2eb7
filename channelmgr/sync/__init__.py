"""The sync engine: ledger -> outbox -> OTAs, and OTA bookings -> inbox -> ledger."""
