"""ICE set-up shared by the WebRTC leg and its test caller.

Two things aiortc does not let us configure directly:

* STUN/TURN servers come from configuration in the seed's shape (`{"urls", "username", "credential"}`);
  an empty list means host candidates only. aiortc's own default (a public STUN server) stalls gathering
  on machines without internet, so we always pass an explicit list.
* Which local addresses to gather host candidates on. aioice enumerates the machine's interfaces and
  skips 127.0.0.1, so loopback-only tests cannot connect, and a NAT deployment may want to announce one
  public address. `restrict_host_addresses()` changes that for one peer connection only: it wraps
  `get_component_candidates` on each of that connection's aioice `Connection` objects, substituting the
  configured addresses for the enumerated ones. No module-level state changes, so other peer connections
  in the process keep aioice's default behaviour.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from aiortc import RTCConfiguration, RTCIceServer, RTCPeerConnection


def rtc_configuration(ice_servers: Iterable[dict[str, Any]] = ()) -> RTCConfiguration:
    """RTCConfiguration from seed-shaped ICE server dicts (`urls` a string or list; null credentials ok)."""
    servers = []
    for entry in ice_servers:
        urls = entry.get("urls")
        if not urls:
            raise ValueError(f"ICE server without urls: {entry!r}")
        servers.append(
            RTCIceServer(urls=urls, username=entry.get("username"), credential=entry.get("credential"))
        )
    return RTCConfiguration(iceServers=servers)


def _ice_connections(pc: RTCPeerConnection) -> list[Any]:
    """The aioice Connections behind a peer connection's transports (media and data channel)."""
    dtls_transports = [t.receiver.transport for t in pc.getTransceivers()]
    if pc.sctp is not None:
        dtls_transports.append(pc.sctp.transport)
    connections: list[Any] = []
    for dtls in dtls_transports:
        if dtls is None:
            continue
        connection = dtls.transport.iceGatherer._connection
        if all(connection is not c for c in connections):
            connections.append(connection)
    return connections


def restrict_host_addresses(pc: RTCPeerConnection, addresses: Sequence[str]) -> None:
    """Gather host candidates on exactly `addresses` for this peer connection (no-op when empty).

    Call after the transports exist and before gathering starts: for an answerer between
    setRemoteDescription and setLocalDescription; for an offerer after adding tracks/channels and
    before setLocalDescription.
    """
    if not addresses:
        return
    chosen = list(addresses)
    for connection in _ice_connections(pc):
        if getattr(connection, "_talkwire_host_addresses", None) is not None:
            continue
        original = connection.get_component_candidates

        async def get_component_candidates(*args: Any, _original=original, **kwargs: Any) -> Any:
            if len(args) >= 2:  # (component, addresses, ...)
                args = (args[0], chosen, *args[2:])
            else:
                kwargs["addresses"] = chosen
            return await _original(*args, **kwargs)

        connection.get_component_candidates = get_component_candidates
        connection._talkwire_host_addresses = chosen
