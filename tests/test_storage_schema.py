"""Storage on both engines: migrations, default client and keys, call records, restarts."""
from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlalchemy import inspect, select, text

from control_api.runtime import Runtime
from alembic.script import ScriptDirectory

from control_api.storage import Database, alembic_config, calls
from control_api.storage.clients import (
    KeyRejected,
    add_key,
    create_client,
    ensure_default_client,
    find_key,
    hash_key,
    list_keys,
    revoke_key,
)
from control_api.storage import agents as agent_store
from control_api.storage import phone_numbers as number_store
from control_api.storage import sip_trunks as trunk_store
from control_api.storage import tools as tool_store
from control_api.storage.models import Agent, ApiKey, Base, Client, Prospect
from control_api.storage.owned import delete_owned, update_owned

EXPECTED_TABLES = {
    "clients", "api_keys", "agents", "widgets", "data_collections", "media_handlers", "tools", "agent_tools",
    "prospects", "calls", "call_events", "sip_trunks", "phone_numbers", "campaigns", "campaign_prospects",
    "campaign_numbers",
}


async def test_migrations_create_the_whole_schema_on_a_fresh_database(database_url: str):
    db = await Database.open(database_url)
    try:
        async with db.engine.connect() as conn:
            tables = set(await conn.run_sync(lambda c: inspect(c).get_table_names()))
            version = (await conn.execute(text("SELECT version_num FROM alembic_version"))).scalar_one()
            columns = await conn.run_sync(
                lambda c: {t: {col["name"] for col in inspect(c).get_columns(t)} for t in EXPECTED_TABLES})
        assert EXPECTED_TABLES <= tables
        assert version == ScriptDirectory.from_config(alembic_config()).get_current_head()
        # The migrations and the ORM describe the same columns: a model change needs a migration.
        for table in EXPECTED_TABLES:
            assert columns[table] == {c.name for c in Base.metadata.tables[table].columns}, table
        for table in EXPECTED_TABLES - {"clients"}:
            assert "client_id" in Base.metadata.tables[table].columns, table
    finally:
        await db.close()
    # Opening again is a no-op upgrade, not an error.
    db = await Database.open(database_url)
    await db.close()


async def test_default_client_honours_configured_keys_and_is_idempotent(database_url: str):
    secret, publishable = "sk_live_configured_secret_123", "pk_live_configured_pub_456"
    db = await Database.open(database_url)
    try:
        first = await ensure_default_client(db, secret_key=secret, publishable_key=publishable)
        again = await ensure_default_client(db, secret_key=secret, publishable_key=publishable)
        assert again.client_id == first.client_id
        assert first.publishable_key == publishable and first.created_secret_key is None
        keys = await list_keys(db, first.client_id)
        assert sorted(k.kind for k in keys) == ["publishable", "secret"]
        stored_secret = await find_key(db, secret)
        assert stored_secret.kind == "secret" and stored_secret.key_hash == hash_key(secret)
        assert stored_secret.display_key is None and stored_secret.prefix == secret[:12]
        assert (await find_key(db, publishable)).display_key == publishable
        async with db.session() as session:
            assert len((await session.scalars(select(Client))).all()) == 1
    finally:
        await db.close()


async def test_generated_secret_key_is_reported_only_on_first_start(database_url: str):
    db = await Database.open(database_url)
    try:
        first = await ensure_default_client(db)
        assert first.created_secret_key.startswith("sk_live_") and len(first.created_secret_key) >= 40
        assert first.publishable_key.startswith("pk_live_")
        second = await ensure_default_client(db)
        assert second.created_secret_key is None
        assert second.publishable_key == first.publishable_key
        assert len(await list_keys(db, first.client_id)) == 2
        # A configured key must match its kind.
        with pytest.raises(KeyRejected):
            await ensure_default_client(db, secret_key="pk_live_wrong_kind")
    finally:
        await db.close()


async def test_keys_are_unique_and_revocation_is_recorded(database_url: str):
    db = await Database.open(database_url)
    try:
        client = await create_client(db, "Acme")
        created = await add_key(db, client.id, "publishable", origins=["https://acme.example"])
        assert created.key.startswith("pk_live_")
        with pytest.raises(KeyRejected):
            await add_key(db, client.id, "publishable", created.key)
        row = await revoke_key(db, created.id)
        assert row.revoked_at is not None
        first_revoked = row.revoked_at
        assert (await revoke_key(db, created.id)).revoked_at == first_revoked
        assert await revoke_key(db, "no-such-key") is None
        assert (await find_key(db, created.key)).allowed_origins == ["https://acme.example"]
    finally:
        await db.close()


async def test_call_record_lifecycle(database_url: str):
    db = await Database.open(database_url)
    try:
        client = await create_client(db, "Calls Inc")
        async with db.session() as session:
            agent = Agent(client_id=client.id, name="A", welcome_message="hi", agent_prompt="p")
            session.add(agent)
        call = await calls.create_call(db, client_id=client.id, agent_id=agent.id, type="sip_call",
                                       direction="outbound", status="triggered", phone_to="+15551234567",
                                       prospect_name="Jane")
        assert call.answered_at is None and call.prospect_id
        async with db.session() as session:
            prospect = await session.get(Prospect, call.prospect_id)
        assert (prospect.name, prospect.phone, prospect.client_id) == ("Jane", "+15551234567", client.id)

        answered = await calls.set_status(db, call.id, "in-progress")
        assert answered.answered_at is not None
        await calls.add_transcript_turn(db, client.id, call.id, "agent", "Hello Jane")
        await calls.add_transcript_turn(db, client.id, call.id, "user", "Hi there")
        await calls.append_event(db, client.id, call.id, "tool_call", {"name": "lookup", "arguments": {}})
        await calls.set_recording(db, call.id, "/data/recordings/x.wav")
        done = await calls.finish_call(db, call.id, end_reason="caller_hangup",
                                       call_data=[{"key": "sentiment", "value": "positive"}],
                                       extra_details={"codec": "PCMU"}, is_successful=True)
        assert done.status == "completed" and done.end_reason == "caller_hangup"
        assert done.ended_at >= done.answered_at and done.duration is not None and done.duration >= 0
        # Final is final.
        assert (await calls.set_status(db, call.id, "failed")).status == "completed"

        events = await calls.list_events(db, call.id)
        assert [e.seq for e in events] == list(range(1, len(events) + 1))
        assert [e.kind for e in events] == ["status", "transcript", "transcript", "tool_call", "status"]
        assert [(t["role"], t["text"]) for t in await calls.transcript(db, call.id)] == [
            ("agent", "Hello Jane"), ("user", "Hi there")]
        stored = await calls.get_call(db, call.id)
        assert stored.recording_path == "/data/recordings/x.wav"
        assert stored.call_data == [{"key": "sentiment", "value": "positive"}]
        assert stored.extra_details == {"codec": "PCMU"} and stored.is_successful is True
        assert stored.call_triggered_at.tzinfo is not None
        with pytest.raises(LookupError):
            await calls.append_event(db, client.id, "missing-call", "transcript", {})
    finally:
        await db.close()


async def test_data_survives_a_restart(database_url: str, settings):
    settings = settings.model_copy(update={"database_url": database_url})
    async with Runtime.open(settings) as runtime:
        client_id = runtime.bootstrap.client_id
        async with runtime.db.session() as session:
            seeded = (await session.scalars(select(Agent).where(Agent.client_id == client_id))).all()
        demo = next(a for a in seeded if a.name == "Demo Agent")
        call = await calls.create_call(runtime.db, client_id=client_id, agent_id=demo.id, type="web_call",
                                       direction="inbound", status="in-progress")
        await calls.add_transcript_turn(runtime.db, client_id, call.id, "user", "remember me")
    async with Runtime.open(settings) as runtime:
        assert runtime.bootstrap.client_id == client_id
        assert runtime.bootstrap.created_secret_key is None
        async with runtime.db.session() as session:
            agents = (await session.scalars(select(Agent).where(Agent.client_id == client_id))).all()
        assert sorted(a.id for a in agents) == sorted(a.id for a in seeded)  # the demo agents are seeded once
        assert demo.welcome_message and demo.agent_prompt
        assert [t["text"] for t in await calls.transcript(runtime.db, call.id)] == ["remember me"]


async def test_secret_keys_never_reach_the_database_file_in_plaintext(settings, data_dir: Path):
    async with Runtime.open(settings.model_copy(update={"secret_key": None})) as runtime:
        generated = runtime.bootstrap.created_secret_key
        created = await add_key(runtime.db, runtime.bootstrap.client_id, "secret")
        async with runtime.db.session() as session:
            hashes = (await session.scalars(select(ApiKey.key_hash).where(ApiKey.kind == "secret"))).all()
    files = [p for p in data_dir.iterdir() if p.name.startswith("talkwire.db")]
    blob = b"".join(p.read_bytes() for p in files)
    assert hash_key(generated).encode() in blob  # the file really is where the keys live
    assert len(hashes) == 2
    for secret in (generated, created.key):
        assert secret.encode() not in blob
        assert secret.split("_", 2)[2].encode() not in blob


async def test_concurrent_timeline_appends_keep_a_gapless_order(database_url: str):
    db = await Database.open(database_url)
    try:
        client = await create_client(db, "Busy")
        async with db.session() as session:
            agent = Agent(client_id=client.id, name="A")
            session.add(agent)
        call = await calls.create_call(db, client_id=client.id, agent_id=agent.id, type="web_call",
                                       direction="inbound", status="in-progress")
        await asyncio.gather(*(calls.add_transcript_turn(db, client.id, call.id, "user", str(i)) for i in range(20)))
        events = await calls.list_events(db, call.id)
        assert [e.seq for e in events] == list(range(1, 21))
        assert sorted(int(e.payload["text"]) for e in events) == list(range(20))
    finally:
        await db.close()


async def test_demo_agents_are_seeded_with_the_servers_default_providers(settings):
    """`--providers fake` (the settings fixture) seeds demo agents that run no models."""
    async with Runtime.open(settings) as runtime:
        async with runtime.db.session() as session:
            agents = (await session.scalars(select(Agent))).all()
    assert len(agents) == 2
    for agent in agents:
        assert agent.model["provider"] == agent.voice["provider"] == agent.transcription["provider"] == "FAKE"


async def test_repositories_read_another_clients_rows_as_missing(database_url: str):
    db = await Database.open(database_url)
    try:
        mine, theirs = await create_client(db, "mine"), await create_client(db, "theirs")
        agent = await agent_store.create_agent(db, mine.id, {"name": "Mine"})
        assert (await agent_store.load_agent(db, mine.id, agent.id))["name"] == "Mine"
        assert await agent_store.load_agent(db, theirs.id, agent.id) is None
        assert await agent_store.get_agent(db, theirs.id, agent.id) is None
        assert await agent_store.list_agents(db, theirs.id) == []
        assert await agent_store.agent_widget(db, theirs.id, agent.id) is None
        assert await update_owned(db, Agent, theirs.id, agent.id, {"name": "Taken"}) is None
        assert await delete_owned(db, Agent, theirs.id, agent.id) is None
        assert (await agent_store.get_agent(db, mine.id, agent.id)).name == "Mine"
        renamed = await update_owned(db, Agent, mine.id, agent.id, {"name": "Renamed"})
        assert renamed.name == "Renamed" and renamed.updated_at >= agent.updated_at
        assert (await delete_owned(db, Agent, mine.id, agent.id)).id == agent.id
        assert await agent_store.get_agent(db, mine.id, agent.id) is None
    finally:
        await db.close()


async def test_a_call_loads_its_agents_tools_and_media_handlers(database_url: str):
    db = await Database.open(database_url)
    try:
        client = await create_client(db, "c")
        agent = await agent_store.create_agent(db, client.id, {"name": "A"})
        tool = await tool_store.create_tool(db, client.id, {
            "name": "Lookup", "description": "", "ref_code": "lookup", "type": "client",
            "execution_mode": "fire_and_forget", "channels": ["voice_web"], "parameters": []})
        await tool_store.attach(db, client.id, agent.id, tool.id)
        await agent_store.create_media_handler(db, client.id, agent.id, {"reason": "kyc", "route": "vision"})
        [loaded] = await agent_store.load_agent_tools(db, agent.id)
        assert loaded["ref_code"] == "lookup" and loaded["is_active"] is True
        [handler] = await agent_store.load_media_handlers(db, agent.id)
        assert handler["reason"] == "kyc" and handler["agent_id"] == agent.id
    finally:
        await db.close()


async def test_inbound_routing_finds_a_number_by_its_spellings_and_dialling_finds_its_trunk(database_url: str):
    db = await Database.open(database_url)
    try:
        mine, theirs = await create_client(db, "mine"), await create_client(db, "theirs")
        agent = await agent_store.create_agent(db, mine.id, {"name": "A"})
        number, trunk = await number_store.add_number(
            db, mine.id, {"number": "+15551230000", "agent_id": agent.id, "is_active": True},
            new_trunk={"host": "sip.example.net", "port": 5060, "transport": "udp"})
        dialled = await number_store.find_dialled_number(db, ["15551230000", "+15551230000"])
        assert dialled.number.id == number.id and dialled.agent.id == agent.id
        assert await number_store.find_dialled_number(db, ["+15550000000"]) is None
        await number_store.add_number(db, mine.id, {"number": "+15551230001"}, trunk_id=trunk.id)
        assert (await number_store.find_dialled_number(db, ["+15551230001"])).agent is None  # no agent answers
        assert (await trunk_store.trunk_of_number(db, mine.id, "+15551230000")).id == trunk.id
        assert await trunk_store.trunk_of_number(db, theirs.id, "+15551230000") is None
        assert await number_store.find_number(db, theirs.id, "+15551230000") is None
        with pytest.raises(LookupError):  # a trunk is used only by its own client
            await number_store.add_number(db, theirs.id, {"number": "+15551239999"}, trunk_id=trunk.id)
    finally:
        await db.close()


async def test_first_agents_are_seeded_once_in_order_with_the_second_ones_tools(database_url: str):
    db = await Database.open(database_url)
    try:
        client = await create_client(db, "c")
        tool = {"name": "Lookup", "description": "", "ref_code": "lookup", "type": "client",
                "execution_mode": "fire_and_forget", "channels": ["voice_web"], "parameters": []}
        first = await agent_store.seed_first_agents(db, client.id, {"name": "One"}, {"name": "Two"}, [tool])
        assert await agent_store.seed_first_agents(db, client.id, {"name": "Again"}, {"name": "Again"}, []) is None
        one, two = await agent_store.list_agents(db, client.id)
        assert (one.id, one.name, two.name) == (first, "One", "Two")
        assert await agent_store.load_agent_tools(db, one.id) == []
        assert [t["ref_code"] for t in await agent_store.load_agent_tools(db, two.id)] == ["lookup"]
    finally:
        await db.close()
