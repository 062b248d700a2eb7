"""The ledger's tables. The ledger is the truth (DESIGN.md invariant 1).

Names are the hotel's: a *night* is a stay date in the property's time zone; *physical*
rooms are what the hotel owns for that night, *out_of_order* cannot be sold, *sold* are
booked, *held* are blocked for groups or the front desk. Free = physical - out_of_order -
sold - held. Money is always an integer in minor units next to its ISO currency.

Columns named ``*_ct`` hold ciphertext (channelmgr.security), never plain guest data.
Schema changes go through Alembic migrations in ``migrations/versions``.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    SmallInteger,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
    text,
    true,
)

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

# BigInteger primary keys that still autoincrement on SQLite
Id = BigInteger().with_variant(Integer(), "sqlite")
TS = DateTime(timezone=True)

properties = Table(
    "properties",
    metadata,
    Column("id", Id, primary_key=True),
    Column("code", String(64), nullable=False, unique=True),
    Column("name", String(200), nullable=False),
    Column("timezone", String(64), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("active", Boolean, nullable=False, server_default=true()),
)

room_types = Table(
    "room_types",
    metadata,
    Column("id", Id, primary_key=True),
    Column("property_id", ForeignKey("properties.id"), nullable=False),
    Column("code", String(64), nullable=False),
    Column("name", String(200), nullable=False),
    Column("physical_rooms", Integer, nullable=False),
    Column("active", Boolean, nullable=False, server_default=true()),
    UniqueConstraint("property_id", "code", name="uq_room_types_property_code"),
)

rate_plans = Table(
    "rate_plans",
    metadata,
    Column("id", Id, primary_key=True),
    Column("property_id", ForeignKey("properties.id"), nullable=False),
    Column("room_type_id", ForeignKey("room_types.id"), nullable=False),
    Column("code", String(64), nullable=False),
    Column("name", String(200), nullable=False),
    Column("occupancy", Integer, nullable=False),
    Column("meal_plan", String(32), nullable=True),
    # a derived plan takes its price from its parent through rules held in the mapping
    Column("parent_id", ForeignKey("rate_plans.id"), nullable=True),
    Column("active", Boolean, nullable=False, server_default=true()),
    UniqueConstraint("property_id", "code", name="uq_rate_plans_property_code"),
)

# which channels a property is listed on: bookings and ARI changes fan out to these
property_channels = Table(
    "property_channels",
    metadata,
    Column("property_id", ForeignKey("properties.id"), primary_key=True),
    Column("channel", String(32), primary_key=True),
)

inventory = Table(
    "inventory",
    metadata,
    Column("room_type_id", ForeignKey("room_types.id"), primary_key=True),
    Column("night", Date, primary_key=True),
    Column("property_id", ForeignKey("properties.id"), nullable=False),
    # NULL physical = the room type's physical_rooms (set per night to override)
    Column("physical", Integer, nullable=True),
    Column("out_of_order", Integer, nullable=False, server_default=text("0")),
    Column("sold", Integer, nullable=False, server_default=text("0")),
    Column("held", Integer, nullable=False, server_default=text("0")),
    Index("ix_inventory_property_night", "property_id", "night"),
)

rates = Table(
    "rates",
    metadata,
    Column("rate_plan_id", ForeignKey("rate_plans.id"), primary_key=True),
    Column("night", Date, primary_key=True),
    Column("occupancy", Integer, primary_key=True),
    Column("property_id", ForeignKey("properties.id"), nullable=False),
    Column("price_minor", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Index("ix_rates_property_night", "property_id", "night"),
)

restrictions = Table(
    "restrictions",
    metadata,
    Column("rate_plan_id", ForeignKey("rate_plans.id"), primary_key=True),
    Column("night", Date, primary_key=True),
    Column("property_id", ForeignKey("properties.id"), nullable=False),
    Column("min_los", Integer, nullable=True),
    Column("max_los", Integer, nullable=True),
    Column("cta", Boolean, nullable=True),
    Column("ctd", Boolean, nullable=True),
    Column("stop_sell", Boolean, nullable=True),
    Index("ix_restrictions_property_night", "property_id", "night"),
)

bookings = Table(
    "bookings",
    metadata,
    Column("id", Id, primary_key=True),
    Column("property_id", ForeignKey("properties.id"), nullable=True),
    Column("hotel_code", String(64), nullable=False),  # the OTA's hotel id as received
    Column("channel", String(32), nullable=False),
    Column("ota_booking_id", String(128), nullable=False),
    Column("confirmation", String(32), nullable=True),  # our number, given to the OTA
    Column("status", String(16), nullable=False),  # confirmed | cancelled | pending
    Column("revision", String(128), nullable=True),  # the revision in force
    Column("revised_at", TS, nullable=True),
    Column("checkin", Date, nullable=True),
    Column("checkout", Date, nullable=True),
    Column("rooms", Integer, nullable=False, server_default=text("0")),
    Column("amount_minor", BigInteger, nullable=True),
    Column("currency", String(3), nullable=True),
    Column("booked_at", TS, nullable=True),  # when the guest booked (the OTA's time)
    Column("received_at", TS, nullable=False),
    Column("updated_at", TS, nullable=False),
    Column("guest_name_ct", Text, nullable=True),
    Column("guest_phone_ct", Text, nullable=True),
    Column("guest_email_ct", Text, nullable=True),
    Column("guest_id_number_ct", Text, nullable=True),
    Column("special_requests_ct", Text, nullable=True),
    Column("overbooked", Boolean, nullable=False, server_default=false()),
    Column("unmapped", Boolean, nullable=False, server_default=false()),
    # issue 14 (migration 0006): the room type and rate plan of the first room line, kept
    # when the booking is cancelled (its nights are not): the cancellation rate by them
    Column("room_type_id", ForeignKey("room_types.id"), nullable=True),
    Column("rate_plan_id", ForeignKey("rate_plans.id"), nullable=True),
    UniqueConstraint("channel", "ota_booking_id", name="uq_bookings_channel_ota_id"),
    Index("ix_bookings_property_checkin", "property_id", "checkin"),
    # issue 13 (migration 0004): the console's search and arrival list at 100,000 bookings
    Index("ix_bookings_ota_booking_id", "ota_booking_id"),
    Index("ix_bookings_confirmation", "confirmation"),
    Index("ix_bookings_checkin", "checkin"),
    # issue 14 (migration 0005): the booking-date reports
    Index("ix_bookings_property_booked_at", "property_id", "booked_at"),
)

booking_nights = Table(
    "booking_nights",
    metadata,
    Column("id", Id, primary_key=True),
    Column("booking_id", ForeignKey("bookings.id"), nullable=False, index=True),
    Column("room_type_id", ForeignKey("room_types.id"), nullable=True),
    Column("rate_plan_id", ForeignKey("rate_plans.id"), nullable=True),
    Column("room_code", String(64), nullable=False),  # the OTA's codes as received
    Column("rate_code", String(64), nullable=True),
    Column("night", Date, nullable=False),
    Column("rooms", Integer, nullable=False),
    Column("price_minor", BigInteger, nullable=True),
    # whether these rooms were taken off the ledger's inventory (False when unmapped)
    Column("counted", Boolean, nullable=False),
)

booking_revisions = Table(
    "booking_revisions",
    metadata,
    Column("id", Id, primary_key=True),
    Column("booking_id", ForeignKey("bookings.id"), nullable=False, index=True),
    Column("channel", String(32), nullable=False),
    Column("ota_booking_id", String(128), nullable=False),
    Column("revision", String(128), nullable=False),
    Column("action", String(16), nullable=False),  # new | modify | cancel
    Column("revised_at", TS, nullable=True),
    Column("received_at", TS, nullable=False),
    Column("inbox_id", ForeignKey("inbox.id"), nullable=True),
    # applied | superseded (an older revision that arrived late)
    Column("outcome", String(16), nullable=False),
    # digest of the booking's content without envelope fields (adapters.base.contract
    # .content_fingerprint): a resend of the content applied last is a duplicate (issue 9)
    Column("fingerprint", String(64), nullable=True),
    UniqueConstraint("channel", "ota_booking_id", "revision", name="uq_booking_revisions_key"),
)

# every message an OTA sends us, stored before anything else is done with it
inbox = Table(
    "inbox",
    metadata,
    Column("id", Id, primary_key=True),
    Column("channel", String(32), nullable=False),
    Column("received_at", TS, nullable=False),
    Column("kind", String(32), nullable=False),  # reservation | cancel | ...
    Column("body_ct", Text, nullable=False),  # the raw message, encrypted (guest data)
    # sha256 of the raw body: the same message pulled again is recognised, not stored twice
    Column("body_sha256", String(64), nullable=False),
    Column("status", String(16), nullable=False),  # received | applied | duplicate | failed
    Column("error", Text, nullable=True),
    Column("ota_booking_id", String(128), nullable=True),
    Column("revision", String(128), nullable=True),
    Column("processed_at", TS, nullable=True),
    Index("ix_inbox_status", "status"),
    Index("ix_inbox_channel_sha", "channel", "body_sha256"),
)

journal = Table(
    "journal",
    metadata,
    Column("id", Id, primary_key=True),
    Column("at", TS, nullable=False),
    Column("actor", String(64), nullable=False),  # cli:user, channel:booking, mapping, api
    Column("property_id", ForeignKey("properties.id"), nullable=True),
    Column("entity", String(32), nullable=False),  # inventory | rate | restriction | booking | ...
    Column("entity_key", JSON, nullable=False),
    Column("action", String(32), nullable=False),
    Column("before", JSON, nullable=True),
    Column("after", JSON, nullable=True),
    Column("reason", Text, nullable=True),
    Column("correlation_id", String(64), nullable=False),
    Index("ix_journal_property_id", "property_id", "id"),
)

outbox = Table(
    "outbox",
    metadata,
    Column("id", Id, primary_key=True),
    Column("channel", String(32), nullable=False),
    Column("property_id", ForeignKey("properties.id"), nullable=False),
    # rooms | rate | full (every cell of the property on this channel, over its horizon)
    Column("kind", String(8), nullable=False),
    Column("room_type_id", ForeignKey("room_types.id"), nullable=True),
    Column("rate_plan_id", ForeignKey("rate_plans.id"), nullable=True),
    Column("night", Date, nullable=True),
    # the push key: one pending row per (channel, cell); a later change re-uses it
    Column("cell", String(96), nullable=False),
    Column("status", String(8), nullable=False),  # pending | claimed | done | dead
    Column("attempts", Integer, nullable=False, server_default=text("0")),
    Column("available_at", TS, nullable=False),
    Column("created_at", TS, nullable=False),
    Column("claimed_by", String(64), nullable=True),
    Column("lease_until", TS, nullable=True),
    Column("last_error", Text, nullable=True),
    Column("correlation_id", String(64), nullable=True),
    # issue 13 (migration 0004): 0 closes (a fall in rooms to sell, a stop-sell), 1 any other
    # change, 2 a full push; claimed in (priority, id) order, so a closure overtakes prices
    Column("priority", SmallInteger, nullable=False, server_default=text("1")),
    Index("ix_outbox_claim", "status", "channel", "available_at"),
    Index("ix_outbox_next", "channel", "status", "priority", "id"),
    Index("ix_outbox_channel_cell", "channel", "cell", "status"),
    Index("ix_outbox_created_at", "created_at"),
    Index(
        "uq_outbox_pending_cell",
        "channel",
        "cell",
        unique=True,
        sqlite_where=text("status = 'pending'"),
        postgresql_where=text("status = 'pending'"),
    ),
)

conflicts = Table(
    "conflicts",
    metadata,
    Column("id", Id, primary_key=True),
    Column("at", TS, nullable=False),
    Column("property_id", ForeignKey("properties.id"), nullable=True),
    Column("channel", String(32), nullable=True),
    # overbooking | unmapped_code | malformed_message | drift | price_mismatch | out_of_order | dead_letter
    Column("kind", String(32), nullable=False),
    Column("booking_id", ForeignKey("bookings.id"), nullable=True),
    Column("inbox_id", ForeignKey("inbox.id"), nullable=True),
    Column("summary", Text, nullable=False),
    Column("detail", JSON, nullable=True),
    Column("status", String(16), nullable=False, server_default=text("'open'")),
    Column("resolved_at", TS, nullable=True),
    # who closed it (a person, or "system" when the cause went away by itself) and why
    Column("resolved_by", String(64), nullable=True),
    Column("resolution", Text, nullable=True),
    Index("ix_conflicts_status", "status", "at"),
)

# every daemon process that claims outbox rows (crash recovery, issue 10): claims name their
# process (``<process id>/<channel>``); a process known to be gone (stopped, its PostgreSQL
# advisory lock free, its pid gone from this host, or its heartbeat stale) has its claims
# taken over at once by the next process, without waiting for the lease
processes = Table(
    "processes",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("host", String(255), nullable=False),
    Column("pid", Integer, nullable=False),
    Column("started_at", TS, nullable=False),
    Column("heartbeat_at", TS, nullable=False),
    Column("stopped_at", TS, nullable=True),
)

sync_log = Table(
    "sync_log",
    metadata,
    Column("id", Id, primary_key=True),
    Column("at", TS, nullable=False),
    Column("run_id", String(32), nullable=True),
    Column("channel", String(32), nullable=False),
    Column("property", String(64), nullable=True),  # the property code
    Column("direction", String(4), nullable=False),  # out | in
    Column("operation", String(64), nullable=False),
    Column("items", Integer, nullable=False, server_default=text("0")),
    Column("result", String(16), nullable=False),  # ok | partial | retry | failed | rejected
    Column("duration_ms", Float, nullable=False),
    Column("request_id", String(128), nullable=True),
    Column("attempt", Integer, nullable=False, server_default=text("1")),
    Column("error", Text, nullable=True),
    Column("request", Text, nullable=True),  # redacted
    Column("response", Text, nullable=True),  # redacted
    Index("ix_sync_log_channel_at", "channel", "at"),
    Index("ix_sync_log_at", "at"),
)

channel_status = Table(
    "channel_status",
    metadata,
    Column("channel", String(32), primary_key=True),
    Column("breaker", String(16), nullable=False, server_default=text("'closed'")),
    Column("last_success_at", TS, nullable=True),
    Column("last_error_at", TS, nullable=True),
    Column("last_error", Text, nullable=True),
    Column("updated_at", TS, nullable=False),
)

# every mapping version put in force, whole: "what is in force" for `mappings diff`, and history
mapping_versions = Table(
    "mapping_versions",
    metadata,
    Column("id", Id, primary_key=True),
    Column("at", TS, nullable=False),
    Column("fingerprint", String(32), nullable=False, index=True),
    Column("files", JSON, nullable=False),  # {path: text}
    Column("actor", String(64), nullable=False),
)


# issue 11: accounts. People and programs (the PMS) that use the operator API and console.
# role: viewer (reads, guest data masked) < operator (resolves conflicts, sees guest data)
# < revenue (sets ARI) < admin (users). Passwords are argon2 hashes; API tokens and session
# ids are stored only as sha256 digests of random 32-byte values.
users = Table(
    "users",
    metadata,
    Column("id", Id, primary_key=True),
    Column("name", String(64), nullable=False, unique=True),
    Column("role", String(16), nullable=False),
    Column("password_hash", String(255), nullable=True),
    Column("disabled", Boolean, nullable=False, server_default=false()),
    Column("created_at", TS, nullable=False),
    Column("updated_at", TS, nullable=False),
)

api_tokens = Table(
    "api_tokens",
    metadata,
    Column("id", Id, primary_key=True),
    Column("user_id", ForeignKey("users.id"), nullable=False, index=True),
    Column("token_sha256", String(64), nullable=False, unique=True),
    Column("created_at", TS, nullable=False),
    Column("last_used_at", TS, nullable=True),
    Column("revoked_at", TS, nullable=True),
)

web_sessions = Table(
    "web_sessions",
    metadata,
    Column("id", Id, primary_key=True),
    Column("session_sha256", String(64), nullable=False, unique=True),
    Column("csrf_sha256", String(64), nullable=False),
    Column("user_id", ForeignKey("users.id"), nullable=False, index=True),
    Column("created_at", TS, nullable=False),
    Column("expires_at", TS, nullable=False),
    Column("remote", String(64), nullable=True),
)


# issue 12 (migration 0003): the reservations desk (channelmgr/desk). Direct bookings are rows
# of ``bookings`` like OTA ones (channel = their source: website, phone, walk_in, ...).

# an API call's Idempotency-Key: a retry with the same key and body gets the first answer
desk_idempotency = Table(
    "desk_idempotency",
    metadata,
    Column("key", String(128), primary_key=True),
    Column("actor", String(64), nullable=False),
    Column("method", String(8), nullable=False),
    Column("body_sha256", String(64), nullable=False),
    Column("status", Integer, nullable=False),
    Column("response", JSON, nullable=False),
    Column("created_at", TS, nullable=False),
)

# a guest's special request, one per kind and text, on a clock from the booking's arrival
desk_requests = Table(
    "desk_requests",
    metadata,
    Column("id", Id, primary_key=True),
    Column("booking_id", ForeignKey("bookings.id"), nullable=False, index=True),
    Column("property_id", ForeignKey("properties.id"), nullable=True),
    # accessible | non_smoking | high_floor | extra_bed | cot | dietary | late_arrival | other
    Column("kind", String(16), nullable=False),
    Column("text_ct", Text, nullable=False),  # the guest's words, encrypted
    Column("text_sha256", String(64), nullable=False),  # keyed digest: the same words again
    Column("status", String(16), nullable=False),  # open | answered | done | withdrawn
    Column("received_at", TS, nullable=False),  # the clock starts: the booking's arrival in the ledger
    Column("due_at", TS, nullable=False),
    Column("answered_at", TS, nullable=True),
    Column("answered_by", String(64), nullable=True),
    Column("note", Text, nullable=True),
    Column("done_at", TS, nullable=True),
    Column("done_by", String(64), nullable=True),
    Column("updated_at", TS, nullable=False),
    Index("ix_desk_requests_status_due", "status", "due_at"),
)

# who saw a booking's guest data in clear, when, and why
desk_access_audit = Table(
    "desk_access_audit",
    metadata,
    Column("id", Id, primary_key=True),
    Column("at", TS, nullable=False),
    Column("actor", String(64), nullable=False),
    Column("booking_id", ForeignKey("bookings.id"), nullable=False, index=True),
    Column("why", Text, nullable=False),
    Column("via", String(16), nullable=False),  # cli | api | page
)

# a pulled booking revision acknowledged to its OTA (a pushed one is answered on commit)
desk_acks = Table(
    "desk_acks",
    metadata,
    Column("id", Id, primary_key=True),
    Column("channel", String(32), nullable=False),
    Column("ota_booking_id", String(128), nullable=False),
    Column("revision", String(128), nullable=False),
    Column("acked_at", TS, nullable=False),
    UniqueConstraint("channel", "ota_booking_id", "revision", name="uq_desk_acks_key"),
)

# a booking's contacts as keyed digests (HMAC of the normalised phone / e-mail), never plain:
# the suspicious-booking checks count rooms and cancellations per contact across channels
desk_contacts = Table(
    "desk_contacts",
    metadata,
    Column("id", Id, primary_key=True),
    Column("booking_id", ForeignKey("bookings.id"), nullable=False, index=True),
    Column("kind", String(8), nullable=False),  # phone | email
    Column("digest", String(64), nullable=False),
    Column("channel", String(32), nullable=False),
    Column("at", TS, nullable=False),
    Column("rooms", Integer, nullable=False),
    Column("cancelled_at", TS, nullable=True),
    UniqueConstraint("booking_id", "kind", name="uq_desk_contacts_booking_kind"),
    Index("ix_desk_contacts_digest_at", "digest", "at"),
)

# the desk's high-water marks (the last booking revision it has read)
desk_state = Table(
    "desk_state",
    metadata,
    Column("name", String(32), primary_key=True),
    Column("value", BigInteger, nullable=False),
)


# issue 14 (migration 0005): OTA statements imported for settlement, and their lines
statements = Table(
    "statements",
    metadata,
    Column("id", Id, primary_key=True),
    Column("channel", String(32), nullable=False),
    Column("file_name", String(255), nullable=False),
    Column("content_sha256", String(64), nullable=False),  # the same file again changes nothing
    Column("imported_by", String(64), nullable=False),
    Column("imported_at", TS, nullable=False),
    Column("lines", Integer, nullable=False),
    UniqueConstraint("channel", "content_sha256", name="uq_statements_channel_sha"),
)

statement_lines = Table(
    "statement_lines",
    metadata,
    Column("id", Id, primary_key=True),
    Column("statement_id", BigInteger, ForeignKey("statements.id"), nullable=False),
    Column("line_no", Integer, nullable=False),
    Column("month", String(7), nullable=False),  # YYYY-MM of the arrival
    Column("hotel_code", String(64), nullable=True),
    Column("ota_booking_id", String(128), nullable=False),
    Column("checkin", Date, nullable=True),
    Column("checkout", Date, nullable=True),
    Column("amount_minor", BigInteger, nullable=False),
    Column("commission_minor", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Index("ix_statement_lines_statement_id", "statement_id"),
    Index("ix_statement_lines_ota_booking_id", "ota_booking_id"),
)
