"""Discovery: what agents can choose (`/discovery/models`, `/voices`, `/transcription-models`) and ICE servers.

The lists are the provider registry's catalog: what is installed and configured on this server. Ids are
uuid5 of kind/provider/name, so they stay the same across restarts and servers.
"""
from __future__ import annotations

import uuid

from control_api.openapi import Ctx, Resource
from control_api.schemas.discovery import (
    IceServer,
    IceServerList,
    ModelEntry,
    ModelList,
    TranscriptionModelEntry,
    TranscriptionModelList,
    VoiceEntry,
    VoiceList,
)

api = Resource("Discovery")

NAMESPACE = uuid.UUID("5d0a8c1e-6f2b-4c7e-9a31-7a1ce0c0ffee")


def entry_id(kind: str, provider: str, name: str) -> str:
    return str(uuid.uuid5(NAMESPACE, f"{kind}:{provider}/{name}"))


@api.get("/discovery/models", response=ModelList)
async def list_models(ctx: Ctx) -> ModelList:
    """Language models an agent's `model: {provider, model}` may name."""
    return ModelList(models=[
        ModelEntry(id=entry_id("llm", e.provider, e.name), name=e.name, ai_provider=e.provider, status="active")
        for e in ctx.runtime.providers.catalog("llm")
    ])


@api.get("/discovery/voices", response=VoiceList)
async def list_voices(ctx: Ctx) -> VoiceList:
    """Voices an agent's `voice: {provider, name}` may name."""
    return VoiceList(voices=[
        VoiceEntry(id=entry_id("tts", e.provider, e.name), name=e.name, tts_provider=e.provider,
                   language=e.language, gender=e.gender, status="active")
        for e in ctx.runtime.providers.catalog("tts")
    ])


@api.get("/discovery/transcription-models", response=TranscriptionModelList)
async def list_transcription_models(ctx: Ctx) -> TranscriptionModelList:
    """Speech-to-text models an agent's `transcription: {provider, model}` may name."""
    return TranscriptionModelList(models=[
        TranscriptionModelEntry(id=entry_id("stt", e.provider, e.name), name=e.name, provider=e.provider,
                                status="active")
        for e in ctx.runtime.providers.catalog("stt")
    ])


@api.get("/discovery/ice-servers", response=IceServerList, auth="publishable")
async def list_ice_servers(ctx: Ctx) -> IceServerList:
    """STUN/TURN servers for the browser's RTCPeerConnection (TALKWIRE_ICE_SERVERS; empty on a LAN)."""
    servers = []
    for server in ctx.settings.ice_servers:
        urls = server.get("urls", [])
        servers.append(IceServer(
            urls=[urls] if isinstance(urls, str) else list(urls),
            username=server.get("username"),
            credential=server.get("credential"),
        ))
    return IceServerList(ice_servers=servers)


routes = api.routes
