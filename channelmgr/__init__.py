"""channelmgr: one ledger of what a hotel can sell, kept in step with every OTA."""

__version__ = "0.1.0"
