"""Initial schema: every table of the control plane (see control_api/storage/models.py).

Revision ID: 0001
Revises:
Create Date: 2026-11-23 18:10:18.968427
"""
from __future__ import annotations

from alembic import op
import sqlalchemy as sa


revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('clients',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('is_default', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_clients'))
    )
    op.create_table('agents',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('client_id', sa.String(length=36), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('language', sa.String(length=32), nullable=False),
    sa.Column('model', sa.JSON(), nullable=False),
    sa.Column('voice', sa.JSON(), nullable=False),
    sa.Column('transcription', sa.JSON(), nullable=False),
    sa.Column('welcome_message', sa.Text(), nullable=False),
    sa.Column('inbound_welcome_message', sa.Text(), nullable=True),
    sa.Column('agent_prompt', sa.Text(), nullable=False),
    sa.Column('data_collection', sa.JSON(), nullable=True),
    sa.Column('success_metric', sa.JSON(), nullable=True),
    sa.Column('input_needed_json_format', sa.JSON(), nullable=True),
    sa.Column('temperature', sa.Float(), nullable=True),
    sa.Column('top_p', sa.Float(), nullable=True),
    sa.Column('speed', sa.Float(), nullable=True),
    sa.Column('duty', sa.String(length=64), nullable=True),
    sa.Column('silence_alert_message', sa.Text(), nullable=True),
    sa.Column('call_end_duration', sa.Integer(), nullable=True),
    sa.Column('call_user_alert_duration', sa.Integer(), nullable=True),
    sa.Column('initial_disable_mic_duration', sa.Integer(), nullable=False),
    sa.Column('enable_lid_detection', sa.Boolean(), nullable=False),
    sa.Column('lid_allowed_languages', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['client_id'], ['clients.id'], name=op.f('fk_agents_client_id_clients'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_agents'))
    )
    op.create_index(op.f('ix_agents_client_id'), 'agents', ['client_id'], unique=False)

    op.create_table('api_keys',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('client_id', sa.String(length=36), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('key_hash', sa.String(length=64), nullable=False),
    sa.Column('prefix', sa.String(length=32), nullable=False),
    sa.Column('display_key', sa.String(length=200), nullable=True),
    sa.Column('allowed_origins', sa.JSON(), nullable=False),
    sa.Column('label', sa.String(length=200), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['client_id'], ['clients.id'], name=op.f('fk_api_keys_client_id_clients'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_api_keys')),
    sa.UniqueConstraint('key_hash', name=op.f('uq_api_keys_key_hash'))
    )
    op.create_index(op.f('ix_api_keys_client_id'), 'api_keys', ['client_id'], unique=False)

    op.create_table('prospects',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('client_id', sa.String(length=36), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('phone', sa.String(length=32), nullable=True),
    sa.Column('email_id', sa.String(length=320), nullable=True),
    sa.Column('alternate_phone_number', sa.String(length=32), nullable=True),
    sa.Column('alternate_email_id', sa.String(length=320), nullable=True),
    sa.Column('lead_source', sa.String(length=64), nullable=True),
    sa.Column('status', sa.String(length=32), nullable=False),
    sa.Column('remarks', sa.Text(), nullable=True),
    sa.Column('prospect_data', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['client_id'], ['clients.id'], name=op.f('fk_prospects_client_id_clients'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_prospects'))
    )
    op.create_index(op.f('ix_prospects_client_id'), 'prospects', ['client_id'], unique=False)
    op.create_index(op.f('ix_prospects_phone'), 'prospects', ['phone'], unique=False)

    op.create_table('sip_trunks',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('client_id', sa.String(length=36), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=True),
    sa.Column('host', sa.String(length=255), nullable=False),
    sa.Column('port', sa.Integer(), nullable=False),
    sa.Column('transport', sa.String(length=8), nullable=False),
    sa.Column('username', sa.String(length=200), nullable=True),
    sa.Column('password', sa.String(length=200), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['client_id'], ['clients.id'], name=op.f('fk_sip_trunks_client_id_clients'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_sip_trunks'))
    )
    op.create_index(op.f('ix_sip_trunks_client_id'), 'sip_trunks', ['client_id'], unique=False)

    op.create_table('tools',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('client_id', sa.String(length=36), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('ref_code', sa.String(length=200), nullable=False),
    sa.Column('type', sa.String(length=16), nullable=False),
    sa.Column('execution_mode', sa.String(length=32), nullable=False),
    sa.Column('channels', sa.JSON(), nullable=False),
    sa.Column('parameters', sa.JSON(), nullable=False),
    sa.Column('server', sa.JSON(), nullable=True),
    sa.Column('request', sa.JSON(), nullable=True),
    sa.Column('client_fields', sa.JSON(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['client_id'], ['clients.id'], name=op.f('fk_tools_client_id_clients'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_tools'))
    )
    op.create_index(op.f('ix_tools_client_id'), 'tools', ['client_id'], unique=False)

    op.create_table('agent_tools',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('client_id', sa.String(length=36), nullable=False),
    sa.Column('agent_id', sa.String(length=36), nullable=False),
    sa.Column('tool_id', sa.String(length=36), nullable=False),
    sa.Column('is_active', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['agent_id'], ['agents.id'], name=op.f('fk_agent_tools_agent_id_agents'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['client_id'], ['clients.id'], name=op.f('fk_agent_tools_client_id_clients'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['tool_id'], ['tools.id'], name=op.f('fk_agent_tools_tool_id_tools'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_agent_tools')),
    sa.UniqueConstraint('agent_id', 'tool_id', name=op.f('uq_agent_tools_agent_id'))
    )
    op.create_index(op.f('ix_agent_tools_agent_id'), 'agent_tools', ['agent_id'], unique=False)
    op.create_index(op.f('ix_agent_tools_client_id'), 'agent_tools', ['client_id'], unique=False)
    op.create_index(op.f('ix_agent_tools_tool_id'), 'agent_tools', ['tool_id'], unique=False)

    op.create_table('campaigns',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('client_id', sa.String(length=36), nullable=False),
    sa.Column('agent_id', sa.String(length=36), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('provider', sa.String(length=64), nullable=True),
    sa.Column('timezone', sa.String(length=64), nullable=False),
    sa.Column('call_hours_start', sa.String(length=8), nullable=False),
    sa.Column('call_hours_end', sa.String(length=8), nullable=False),
    sa.Column('call_days', sa.JSON(), nullable=False),
    sa.Column('max_concurrent_calls', sa.Integer(), nullable=False),
    sa.Column('call_timeout_seconds', sa.Integer(), nullable=False),
    sa.Column('from_numbers', sa.JSON(), nullable=False),
    sa.Column('use_managed_numbers', sa.Boolean(), nullable=False),
    sa.Column('retry_failed_calls', sa.Boolean(), nullable=False),
    sa.Column('max_retries_failed', sa.Integer(), nullable=False),
    sa.Column('retry_delay_failed_seconds', sa.Integer(), nullable=False),
    sa.Column('retry_busy_calls', sa.Boolean(), nullable=False),
    sa.Column('max_retries_busy', sa.Integer(), nullable=False),
    sa.Column('retry_delay_busy_seconds', sa.Integer(), nullable=False),
    sa.Column('retry_no_answer_calls', sa.Boolean(), nullable=False),
    sa.Column('max_retries_no_answer', sa.Integer(), nullable=False),
    sa.Column('retry_delay_no_answer_seconds', sa.Integer(), nullable=False),
    sa.Column('allow_reschedule', sa.Boolean(), nullable=False),
    sa.Column('max_reschedules_per_prospect', sa.Integer(), nullable=True),
    sa.Column('reschedule_min_delay_hours', sa.Integer(), nullable=True),
    sa.Column('is_hr_campaign', sa.Boolean(), nullable=False),
    sa.Column('scheduled_start_time', sa.DateTime(timezone=True), nullable=True),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('completed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('successful_calls', sa.Integer(), nullable=False),
    sa.Column('failed_calls', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['agent_id'], ['agents.id'], name=op.f('fk_campaigns_agent_id_agents'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['client_id'], ['clients.id'], name=op.f('fk_campaigns_client_id_clients'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_campaigns'))
    )
    op.create_index(op.f('ix_campaigns_agent_id'), 'campaigns', ['agent_id'], unique=False)
    op.create_index(op.f('ix_campaigns_client_id'), 'campaigns', ['client_id'], unique=False)

    op.create_table('data_collections',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('client_id', sa.String(length=36), nullable=False),
    sa.Column('agent_id', sa.String(length=36), nullable=False),
    sa.Column('key', sa.String(length=200), nullable=False),
    sa.Column('prompt', sa.Text(), nullable=False),
    sa.Column('data_type', sa.String(length=16), nullable=False),
    sa.Column('enum_values', sa.JSON(), nullable=True),
    sa.Column('store_to_prospect', sa.Boolean(), nullable=False),
    sa.Column('prospect_column_name', sa.String(length=200), nullable=True),
    sa.Column('store_to_prospect_data', sa.Boolean(), nullable=False),
    sa.Column('prospect_data_key', sa.String(length=200), nullable=True),
    sa.Column('store_directly_to_prospect', sa.Boolean(), nullable=False),
    sa.Column('is_active', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['agent_id'], ['agents.id'], name=op.f('fk_data_collections_agent_id_agents'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['client_id'], ['clients.id'], name=op.f('fk_data_collections_client_id_clients'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_data_collections'))
    )
    op.create_index(op.f('ix_data_collections_agent_id'), 'data_collections', ['agent_id'], unique=False)
    op.create_index(op.f('ix_data_collections_client_id'), 'data_collections', ['client_id'], unique=False)

    op.create_table('media_handlers',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('client_id', sa.String(length=36), nullable=False),
    sa.Column('agent_id', sa.String(length=36), nullable=False),
    sa.Column('reason', sa.String(length=200), nullable=False),
    sa.Column('route', sa.String(length=16), nullable=False),
    sa.Column('webhook_url', sa.Text(), nullable=True),
    sa.Column('webhook_headers', sa.JSON(), nullable=True),
    sa.Column('inject_as', sa.String(length=16), nullable=False),
    sa.Column('interrupt', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['agent_id'], ['agents.id'], name=op.f('fk_media_handlers_agent_id_agents'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['client_id'], ['clients.id'], name=op.f('fk_media_handlers_client_id_clients'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_media_handlers'))
    )
    op.create_index(op.f('ix_media_handlers_agent_id'), 'media_handlers', ['agent_id'], unique=False)
    op.create_index(op.f('ix_media_handlers_client_id'), 'media_handlers', ['client_id'], unique=False)

    op.create_table('phone_numbers',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('client_id', sa.String(length=36), nullable=False),
    sa.Column('number', sa.String(length=32), nullable=False),
    sa.Column('country_code', sa.String(length=2), nullable=True),
    sa.Column('label', sa.String(length=200), nullable=True),
    sa.Column('trunk_id', sa.String(length=36), nullable=True),
    sa.Column('agent_id', sa.String(length=36), nullable=True),
    sa.Column('is_active', sa.Boolean(), nullable=False),
    sa.Column('is_internal', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['agent_id'], ['agents.id'], name=op.f('fk_phone_numbers_agent_id_agents'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['client_id'], ['clients.id'], name=op.f('fk_phone_numbers_client_id_clients'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['trunk_id'], ['sip_trunks.id'], name=op.f('fk_phone_numbers_trunk_id_sip_trunks'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_phone_numbers')),
    sa.UniqueConstraint('number', name=op.f('uq_phone_numbers_number'))
    )
    op.create_index(op.f('ix_phone_numbers_agent_id'), 'phone_numbers', ['agent_id'], unique=False)
    op.create_index(op.f('ix_phone_numbers_client_id'), 'phone_numbers', ['client_id'], unique=False)
    op.create_index(op.f('ix_phone_numbers_trunk_id'), 'phone_numbers', ['trunk_id'], unique=False)

    op.create_table('widgets',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('client_id', sa.String(length=36), nullable=False),
    sa.Column('agent_id', sa.String(length=36), nullable=False),
    sa.Column('mode', sa.String(length=32), nullable=False),
    sa.Column('primary_color', sa.String(length=32), nullable=False),
    sa.Column('secondary_color', sa.String(length=32), nullable=False),
    sa.Column('icon', sa.String(length=200), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['agent_id'], ['agents.id'], name=op.f('fk_widgets_agent_id_agents'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['client_id'], ['clients.id'], name=op.f('fk_widgets_client_id_clients'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_widgets')),
    sa.UniqueConstraint('agent_id', name=op.f('uq_widgets_agent_id'))
    )
    op.create_index(op.f('ix_widgets_client_id'), 'widgets', ['client_id'], unique=False)

    op.create_table('calls',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('client_id', sa.String(length=36), nullable=False),
    sa.Column('agent_id', sa.String(length=36), nullable=False),
    sa.Column('prospect_id', sa.String(length=36), nullable=True),
    sa.Column('campaign_id', sa.String(length=36), nullable=True),
    sa.Column('type', sa.String(length=16), nullable=False),
    sa.Column('direction', sa.String(length=16), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('phone_from', sa.String(length=32), nullable=True),
    sa.Column('phone_to', sa.String(length=32), nullable=True),
    sa.Column('call_triggered_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('answered_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('ended_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('duration', sa.Float(), nullable=True),
    sa.Column('recording_path', sa.Text(), nullable=True),
    sa.Column('provider_call_id', sa.String(length=255), nullable=True),
    sa.Column('end_reason', sa.String(length=64), nullable=True),
    sa.Column('is_successful', sa.Boolean(), nullable=True),
    sa.Column('extra_details', sa.JSON(), nullable=False),
    sa.Column('call_data', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['agent_id'], ['agents.id'], name=op.f('fk_calls_agent_id_agents'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['campaign_id'], ['campaigns.id'], name=op.f('fk_calls_campaign_id_campaigns'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['client_id'], ['clients.id'], name=op.f('fk_calls_client_id_clients'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['prospect_id'], ['prospects.id'], name=op.f('fk_calls_prospect_id_prospects'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_calls'))
    )
    op.create_index(op.f('ix_calls_agent_id'), 'calls', ['agent_id'], unique=False)
    op.create_index(op.f('ix_calls_campaign_id'), 'calls', ['campaign_id'], unique=False)
    op.create_index(op.f('ix_calls_client_id'), 'calls', ['client_id'], unique=False)
    op.create_index(op.f('ix_calls_prospect_id'), 'calls', ['prospect_id'], unique=False)
    op.create_index(op.f('ix_calls_provider_call_id'), 'calls', ['provider_call_id'], unique=False)
    op.create_index(op.f('ix_calls_status'), 'calls', ['status'], unique=False)

    op.create_table('campaign_numbers',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('client_id', sa.String(length=36), nullable=False),
    sa.Column('campaign_id', sa.String(length=36), nullable=False),
    sa.Column('phone_number_id', sa.String(length=36), nullable=False),
    sa.Column('max_concurrent_calls', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['campaign_id'], ['campaigns.id'], name=op.f('fk_campaign_numbers_campaign_id_campaigns'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['client_id'], ['clients.id'], name=op.f('fk_campaign_numbers_client_id_clients'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['phone_number_id'], ['phone_numbers.id'], name=op.f('fk_campaign_numbers_phone_number_id_phone_numbers'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_campaign_numbers')),
    sa.UniqueConstraint('campaign_id', 'phone_number_id', name=op.f('uq_campaign_numbers_campaign_id'))
    )
    op.create_index(op.f('ix_campaign_numbers_campaign_id'), 'campaign_numbers', ['campaign_id'], unique=False)
    op.create_index(op.f('ix_campaign_numbers_client_id'), 'campaign_numbers', ['client_id'], unique=False)
    op.create_index(op.f('ix_campaign_numbers_phone_number_id'), 'campaign_numbers', ['phone_number_id'], unique=False)

    op.create_table('campaign_prospects',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('client_id', sa.String(length=36), nullable=False),
    sa.Column('campaign_id', sa.String(length=36), nullable=False),
    sa.Column('prospect_id', sa.String(length=36), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('reschedules', sa.Integer(), nullable=False),
    sa.Column('last_outcome', sa.String(length=32), nullable=True),
    sa.Column('last_call_id', sa.String(length=36), nullable=True),
    sa.Column('next_attempt_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['campaign_id'], ['campaigns.id'], name=op.f('fk_campaign_prospects_campaign_id_campaigns'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['client_id'], ['clients.id'], name=op.f('fk_campaign_prospects_client_id_clients'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['prospect_id'], ['prospects.id'], name=op.f('fk_campaign_prospects_prospect_id_prospects'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_campaign_prospects')),
    sa.UniqueConstraint('campaign_id', 'prospect_id', name=op.f('uq_campaign_prospects_campaign_id'))
    )
    op.create_index(op.f('ix_campaign_prospects_campaign_id'), 'campaign_prospects', ['campaign_id'], unique=False)
    op.create_index(op.f('ix_campaign_prospects_client_id'), 'campaign_prospects', ['client_id'], unique=False)
    op.create_index(op.f('ix_campaign_prospects_prospect_id'), 'campaign_prospects', ['prospect_id'], unique=False)

    op.create_table('call_events',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('client_id', sa.String(length=36), nullable=False),
    sa.Column('call_id', sa.String(length=36), nullable=False),
    sa.Column('seq', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('payload', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['call_id'], ['calls.id'], name=op.f('fk_call_events_call_id_calls'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['client_id'], ['clients.id'], name=op.f('fk_call_events_client_id_clients'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_call_events')),
    sa.UniqueConstraint('call_id', 'seq', name=op.f('uq_call_events_call_id'))
    )
    op.create_index(op.f('ix_call_events_call_id'), 'call_events', ['call_id'], unique=False)
    op.create_index(op.f('ix_call_events_client_id'), 'call_events', ['client_id'], unique=False)



def downgrade() -> None:
    op.drop_index(op.f('ix_call_events_client_id'), table_name='call_events')
    op.drop_index(op.f('ix_call_events_call_id'), table_name='call_events')

    op.drop_table('call_events')
    op.drop_index(op.f('ix_campaign_prospects_prospect_id'), table_name='campaign_prospects')
    op.drop_index(op.f('ix_campaign_prospects_client_id'), table_name='campaign_prospects')
    op.drop_index(op.f('ix_campaign_prospects_campaign_id'), table_name='campaign_prospects')

    op.drop_table('campaign_prospects')
    op.drop_index(op.f('ix_campaign_numbers_phone_number_id'), table_name='campaign_numbers')
    op.drop_index(op.f('ix_campaign_numbers_client_id'), table_name='campaign_numbers')
    op.drop_index(op.f('ix_campaign_numbers_campaign_id'), table_name='campaign_numbers')

    op.drop_table('campaign_numbers')
    op.drop_index(op.f('ix_calls_status'), table_name='calls')
    op.drop_index(op.f('ix_calls_provider_call_id'), table_name='calls')
    op.drop_index(op.f('ix_calls_prospect_id'), table_name='calls')
    op.drop_index(op.f('ix_calls_client_id'), table_name='calls')
    op.drop_index(op.f('ix_calls_campaign_id'), table_name='calls')
    op.drop_index(op.f('ix_calls_agent_id'), table_name='calls')

    op.drop_table('calls')
    op.drop_index(op.f('ix_widgets_client_id'), table_name='widgets')

    op.drop_table('widgets')
    op.drop_index(op.f('ix_phone_numbers_trunk_id'), table_name='phone_numbers')
    op.drop_index(op.f('ix_phone_numbers_client_id'), table_name='phone_numbers')
    op.drop_index(op.f('ix_phone_numbers_agent_id'), table_name='phone_numbers')

    op.drop_table('phone_numbers')
    op.drop_index(op.f('ix_media_handlers_client_id'), table_name='media_handlers')
    op.drop_index(op.f('ix_media_handlers_agent_id'), table_name='media_handlers')

    op.drop_table('media_handlers')
    op.drop_index(op.f('ix_data_collections_client_id'), table_name='data_collections')
    op.drop_index(op.f('ix_data_collections_agent_id'), table_name='data_collections')

    op.drop_table('data_collections')
    op.drop_index(op.f('ix_campaigns_client_id'), table_name='campaigns')
    op.drop_index(op.f('ix_campaigns_agent_id'), table_name='campaigns')

    op.drop_table('campaigns')
    op.drop_index(op.f('ix_agent_tools_tool_id'), table_name='agent_tools')
    op.drop_index(op.f('ix_agent_tools_client_id'), table_name='agent_tools')
    op.drop_index(op.f('ix_agent_tools_agent_id'), table_name='agent_tools')

    op.drop_table('agent_tools')
    op.drop_index(op.f('ix_tools_client_id'), table_name='tools')

    op.drop_table('tools')
    op.drop_index(op.f('ix_sip_trunks_client_id'), table_name='sip_trunks')

    op.drop_table('sip_trunks')
    op.drop_index(op.f('ix_prospects_phone'), table_name='prospects')
    op.drop_index(op.f('ix_prospects_client_id'), table_name='prospects')

    op.drop_table('prospects')
    op.drop_index(op.f('ix_api_keys_client_id'), table_name='api_keys')

    op.drop_table('api_keys')
    op.drop_index(op.f('ix_agents_client_id'), table_name='agents')

    op.drop_table('agents')
    op.drop_table('clients')
