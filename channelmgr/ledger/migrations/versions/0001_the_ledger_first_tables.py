"""the ledger: first tables

Revision ID: 0001
Revises:
Create Date: 2026-11-22 13:49:55.411151
"""

import sqlalchemy as sa
from alembic import op

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table('channel_status',
    sa.Column('channel', sa.String(length=32), nullable=False),
    sa.Column('breaker', sa.String(length=16), server_default=sa.text("'closed'"), nullable=False),
    sa.Column('last_success_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_error_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('channel', name=op.f('pk_channel_status'))
    )
    op.create_table('inbox',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('channel', sa.String(length=32), nullable=False),
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('body_ct', sa.Text(), nullable=False),
    sa.Column('body_sha256', sa.String(length=64), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('ota_booking_id', sa.String(length=128), nullable=True),
    sa.Column('revision', sa.String(length=128), nullable=True),
    sa.Column('processed_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_inbox'))
    )
    with op.batch_alter_table('inbox', schema=None) as batch_op:
        batch_op.create_index('ix_inbox_status', ['status'], unique=False)
        batch_op.create_index('ix_inbox_channel_sha', ['channel', 'body_sha256'], unique=False)

    op.create_table('mapping_versions',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('fingerprint', sa.String(length=32), nullable=False),
    sa.Column('files', sa.JSON(), nullable=False),
    sa.Column('actor', sa.String(length=64), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_mapping_versions'))
    )
    with op.batch_alter_table('mapping_versions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_mapping_versions_fingerprint'), ['fingerprint'], unique=False)

    op.create_table('properties',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('code', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('timezone', sa.String(length=64), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('active', sa.Boolean(), server_default=sa.true(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_properties')),
    sa.UniqueConstraint('code', name=op.f('uq_properties_code'))
    )
    op.create_table('sync_log',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('run_id', sa.String(length=32), nullable=True),
    sa.Column('channel', sa.String(length=32), nullable=False),
    sa.Column('property', sa.String(length=64), nullable=True),
    sa.Column('direction', sa.String(length=4), nullable=False),
    sa.Column('operation', sa.String(length=64), nullable=False),
    sa.Column('items', sa.Integer(), server_default=sa.text('0'), nullable=False),
    sa.Column('result', sa.String(length=16), nullable=False),
    sa.Column('duration_ms', sa.Float(), nullable=False),
    sa.Column('request_id', sa.String(length=128), nullable=True),
    sa.Column('attempt', sa.Integer(), server_default=sa.text('1'), nullable=False),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('request', sa.Text(), nullable=True),
    sa.Column('response', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_sync_log'))
    )
    with op.batch_alter_table('sync_log', schema=None) as batch_op:
        batch_op.create_index('ix_sync_log_at', ['at'], unique=False)
        batch_op.create_index('ix_sync_log_channel_at', ['channel', 'at'], unique=False)

    op.create_table('bookings',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('property_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('hotel_code', sa.String(length=64), nullable=False),
    sa.Column('channel', sa.String(length=32), nullable=False),
    sa.Column('ota_booking_id', sa.String(length=128), nullable=False),
    sa.Column('confirmation', sa.String(length=32), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('revision', sa.String(length=128), nullable=True),
    sa.Column('revised_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('checkin', sa.Date(), nullable=True),
    sa.Column('checkout', sa.Date(), nullable=True),
    sa.Column('rooms', sa.Integer(), server_default=sa.text('0'), nullable=False),
    sa.Column('amount_minor', sa.BigInteger(), nullable=True),
    sa.Column('currency', sa.String(length=3), nullable=True),
    sa.Column('booked_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('guest_name_ct', sa.Text(), nullable=True),
    sa.Column('guest_phone_ct', sa.Text(), nullable=True),
    sa.Column('guest_email_ct', sa.Text(), nullable=True),
    sa.Column('guest_id_number_ct', sa.Text(), nullable=True),
    sa.Column('special_requests_ct', sa.Text(), nullable=True),
    sa.Column('overbooked', sa.Boolean(), server_default=sa.false(), nullable=False),
    sa.Column('unmapped', sa.Boolean(), server_default=sa.false(), nullable=False),
    sa.ForeignKeyConstraint(['property_id'], ['properties.id'], name=op.f('fk_bookings_property_id_properties')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_bookings')),
    sa.UniqueConstraint('channel', 'ota_booking_id', name='uq_bookings_channel_ota_id')
    )
    with op.batch_alter_table('bookings', schema=None) as batch_op:
        batch_op.create_index('ix_bookings_property_checkin', ['property_id', 'checkin'], unique=False)

    op.create_table('journal',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('actor', sa.String(length=64), nullable=False),
    sa.Column('property_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('entity', sa.String(length=32), nullable=False),
    sa.Column('entity_key', sa.JSON(), nullable=False),
    sa.Column('action', sa.String(length=32), nullable=False),
    sa.Column('before', sa.JSON(), nullable=True),
    sa.Column('after', sa.JSON(), nullable=True),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('correlation_id', sa.String(length=64), nullable=False),
    sa.ForeignKeyConstraint(['property_id'], ['properties.id'], name=op.f('fk_journal_property_id_properties')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_journal'))
    )
    with op.batch_alter_table('journal', schema=None) as batch_op:
        batch_op.create_index('ix_journal_property_id', ['property_id', 'id'], unique=False)

    op.create_table('property_channels',
    sa.Column('property_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('channel', sa.String(length=32), nullable=False),
    sa.ForeignKeyConstraint(['property_id'], ['properties.id'], name=op.f('fk_property_channels_property_id_properties')),
    sa.PrimaryKeyConstraint('property_id', 'channel', name=op.f('pk_property_channels'))
    )
    op.create_table('room_types',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('property_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('code', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('physical_rooms', sa.Integer(), nullable=False),
    sa.Column('active', sa.Boolean(), server_default=sa.true(), nullable=False),
    sa.ForeignKeyConstraint(['property_id'], ['properties.id'], name=op.f('fk_room_types_property_id_properties')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_room_types')),
    sa.UniqueConstraint('property_id', 'code', name='uq_room_types_property_code')
    )
    op.create_table('booking_revisions',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('booking_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('channel', sa.String(length=32), nullable=False),
    sa.Column('ota_booking_id', sa.String(length=128), nullable=False),
    sa.Column('revision', sa.String(length=128), nullable=False),
    sa.Column('action', sa.String(length=16), nullable=False),
    sa.Column('revised_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('inbox_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('outcome', sa.String(length=16), nullable=False),
    sa.ForeignKeyConstraint(['booking_id'], ['bookings.id'], name=op.f('fk_booking_revisions_booking_id_bookings')),
    sa.ForeignKeyConstraint(['inbox_id'], ['inbox.id'], name=op.f('fk_booking_revisions_inbox_id_inbox')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_booking_revisions')),
    sa.UniqueConstraint('channel', 'ota_booking_id', 'revision', name='uq_booking_revisions_key')
    )
    with op.batch_alter_table('booking_revisions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_booking_revisions_booking_id'), ['booking_id'], unique=False)

    op.create_table('conflicts',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('property_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('channel', sa.String(length=32), nullable=True),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('booking_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('inbox_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('summary', sa.Text(), nullable=False),
    sa.Column('detail', sa.JSON(), nullable=True),
    sa.Column('status', sa.String(length=16), server_default=sa.text("'open'"), nullable=False),
    sa.Column('resolved_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['booking_id'], ['bookings.id'], name=op.f('fk_conflicts_booking_id_bookings')),
    sa.ForeignKeyConstraint(['inbox_id'], ['inbox.id'], name=op.f('fk_conflicts_inbox_id_inbox')),
    sa.ForeignKeyConstraint(['property_id'], ['properties.id'], name=op.f('fk_conflicts_property_id_properties')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_conflicts'))
    )
    with op.batch_alter_table('conflicts', schema=None) as batch_op:
        batch_op.create_index('ix_conflicts_status', ['status', 'at'], unique=False)

    op.create_table('inventory',
    sa.Column('room_type_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('night', sa.Date(), nullable=False),
    sa.Column('property_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('physical', sa.Integer(), nullable=True),
    sa.Column('out_of_order', sa.Integer(), server_default=sa.text('0'), nullable=False),
    sa.Column('sold', sa.Integer(), server_default=sa.text('0'), nullable=False),
    sa.Column('held', sa.Integer(), server_default=sa.text('0'), nullable=False),
    sa.ForeignKeyConstraint(['property_id'], ['properties.id'], name=op.f('fk_inventory_property_id_properties')),
    sa.ForeignKeyConstraint(['room_type_id'], ['room_types.id'], name=op.f('fk_inventory_room_type_id_room_types')),
    sa.PrimaryKeyConstraint('room_type_id', 'night', name=op.f('pk_inventory'))
    )
    with op.batch_alter_table('inventory', schema=None) as batch_op:
        batch_op.create_index('ix_inventory_property_night', ['property_id', 'night'], unique=False)

    op.create_table('rate_plans',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('property_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('room_type_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('code', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('occupancy', sa.Integer(), nullable=False),
    sa.Column('meal_plan', sa.String(length=32), nullable=True),
    sa.Column('parent_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('active', sa.Boolean(), server_default=sa.true(), nullable=False),
    sa.ForeignKeyConstraint(['parent_id'], ['rate_plans.id'], name=op.f('fk_rate_plans_parent_id_rate_plans')),
    sa.ForeignKeyConstraint(['property_id'], ['properties.id'], name=op.f('fk_rate_plans_property_id_properties')),
    sa.ForeignKeyConstraint(['room_type_id'], ['room_types.id'], name=op.f('fk_rate_plans_room_type_id_room_types')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_rate_plans')),
    sa.UniqueConstraint('property_id', 'code', name='uq_rate_plans_property_code')
    )
    op.create_table('booking_nights',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('booking_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('room_type_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('rate_plan_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('room_code', sa.String(length=64), nullable=False),
    sa.Column('rate_code', sa.String(length=64), nullable=True),
    sa.Column('night', sa.Date(), nullable=False),
    sa.Column('rooms', sa.Integer(), nullable=False),
    sa.Column('price_minor', sa.BigInteger(), nullable=True),
    sa.Column('counted', sa.Boolean(), nullable=False),
    sa.ForeignKeyConstraint(['booking_id'], ['bookings.id'], name=op.f('fk_booking_nights_booking_id_bookings')),
    sa.ForeignKeyConstraint(['rate_plan_id'], ['rate_plans.id'], name=op.f('fk_booking_nights_rate_plan_id_rate_plans')),
    sa.ForeignKeyConstraint(['room_type_id'], ['room_types.id'], name=op.f('fk_booking_nights_room_type_id_room_types')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_booking_nights'))
    )
    with op.batch_alter_table('booking_nights', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_booking_nights_booking_id'), ['booking_id'], unique=False)

    op.create_table('outbox',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('channel', sa.String(length=32), nullable=False),
    sa.Column('property_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('kind', sa.String(length=8), nullable=False),
    sa.Column('room_type_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('rate_plan_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('night', sa.Date(), nullable=True),
    sa.Column('cell', sa.String(length=96), nullable=False),
    sa.Column('status', sa.String(length=8), nullable=False),
    sa.Column('attempts', sa.Integer(), server_default=sa.text('0'), nullable=False),
    sa.Column('available_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('claimed_by', sa.String(length=64), nullable=True),
    sa.Column('lease_until', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('correlation_id', sa.String(length=64), nullable=True),
    sa.ForeignKeyConstraint(['property_id'], ['properties.id'], name=op.f('fk_outbox_property_id_properties')),
    sa.ForeignKeyConstraint(['rate_plan_id'], ['rate_plans.id'], name=op.f('fk_outbox_rate_plan_id_rate_plans')),
    sa.ForeignKeyConstraint(['room_type_id'], ['room_types.id'], name=op.f('fk_outbox_room_type_id_room_types')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_outbox'))
    )
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.create_index('ix_outbox_claim', ['status', 'channel', 'available_at'], unique=False)
        batch_op.create_index('uq_outbox_pending_cell', ['channel', 'cell'], unique=True, sqlite_where=sa.text("status = 'pending'"), postgresql_where=sa.text("status = 'pending'"))

    op.create_table('rates',
    sa.Column('rate_plan_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('night', sa.Date(), nullable=False),
    sa.Column('occupancy', sa.Integer(), nullable=False),
    sa.Column('property_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('price_minor', sa.BigInteger(), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.ForeignKeyConstraint(['property_id'], ['properties.id'], name=op.f('fk_rates_property_id_properties')),
    sa.ForeignKeyConstraint(['rate_plan_id'], ['rate_plans.id'], name=op.f('fk_rates_rate_plan_id_rate_plans')),
    sa.PrimaryKeyConstraint('rate_plan_id', 'night', 'occupancy', name=op.f('pk_rates'))
    )
    with op.batch_alter_table('rates', schema=None) as batch_op:
        batch_op.create_index('ix_rates_property_night', ['property_id', 'night'], unique=False)

    op.create_table('restrictions',
    sa.Column('rate_plan_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('night', sa.Date(), nullable=False),
    sa.Column('property_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('min_los', sa.Integer(), nullable=True),
    sa.Column('max_los', sa.Integer(), nullable=True),
    sa.Column('cta', sa.Boolean(), nullable=True),
    sa.Column('ctd', sa.Boolean(), nullable=True),
    sa.Column('stop_sell', sa.Boolean(), nullable=True),
    sa.ForeignKeyConstraint(['property_id'], ['properties.id'], name=op.f('fk_restrictions_property_id_properties')),
    sa.ForeignKeyConstraint(['rate_plan_id'], ['rate_plans.id'], name=op.f('fk_restrictions_rate_plan_id_rate_plans')),
    sa.PrimaryKeyConstraint('rate_plan_id', 'night', name=op.f('pk_restrictions'))
    )
    with op.batch_alter_table('restrictions', schema=None) as batch_op:
        batch_op.create_index('ix_restrictions_property_night', ['property_id', 'night'], unique=False)




def downgrade() -> None:
    op.drop_table('mapping_versions')

    with op.batch_alter_table('restrictions', schema=None) as batch_op:
        batch_op.drop_index('ix_restrictions_property_night')

    op.drop_table('restrictions')
    with op.batch_alter_table('rates', schema=None) as batch_op:
        batch_op.drop_index('ix_rates_property_night')

    op.drop_table('rates')
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.drop_index('uq_outbox_pending_cell', sqlite_where=sa.text("status = 'pending'"), postgresql_where=sa.text("status = 'pending'"))
        batch_op.drop_index('ix_outbox_claim')

    op.drop_table('outbox')
    with op.batch_alter_table('booking_nights', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_booking_nights_booking_id'))

    op.drop_table('booking_nights')
    op.drop_table('rate_plans')
    with op.batch_alter_table('inventory', schema=None) as batch_op:
        batch_op.drop_index('ix_inventory_property_night')

    op.drop_table('inventory')
    with op.batch_alter_table('conflicts', schema=None) as batch_op:
        batch_op.drop_index('ix_conflicts_status')

    op.drop_table('conflicts')
    with op.batch_alter_table('booking_revisions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_booking_revisions_booking_id'))

    op.drop_table('booking_revisions')
    op.drop_table('room_types')
    op.drop_table('property_channels')
    with op.batch_alter_table('journal', schema=None) as batch_op:
        batch_op.drop_index('ix_journal_property_id')

    op.drop_table('journal')
    with op.batch_alter_table('bookings', schema=None) as batch_op:
        batch_op.drop_index('ix_bookings_property_checkin')

    op.drop_table('bookings')
    with op.batch_alter_table('sync_log', schema=None) as batch_op:
        batch_op.drop_index('ix_sync_log_channel_at')
        batch_op.drop_index('ix_sync_log_at')

    op.drop_table('sync_log')
    op.drop_table('properties')
    with op.batch_alter_table('inbox', schema=None) as batch_op:
        batch_op.drop_index('ix_inbox_status')

    op.drop_table('inbox')
    op.drop_table('channel_status')

