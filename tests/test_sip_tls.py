"""SIP over TLS with certificate checking: a CA made in the test (the `cryptography` package) signs the
certificates of our TLS port and of baresip's; a call from one user agent to another's TLS port, a call to
baresip over TLS (its recording proves the audio flowed), and a peer whose certificate we do not trust is not
called at all."""
from __future__ import annotations

import asyncio
import datetime
import ipaddress
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import numpy as np
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from sipp.harness import BARESIP, BARESIP_MODULES, free_sip_listen_port, free_udp_port, tone, wait_listening

from media.wav import read_wav
from signalling.sip.routing import Decision, InboundInvite
from signalling.sip.stream_transport import StreamOptions, client_context, server_context
from signalling.sip.transaction import Timers
from signalling.sip.ua import SipUserAgent


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def make_pki(folder: Path) -> tuple[Path, Path, Path]:
    """(CA certificate, server certificate chain, server key) for 127.0.0.1 / localhost, as PEM files."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (x509.CertificateBuilder().subject_name(_name("Talkwire test CA")).issuer_name(_name("Talkwire test CA"))
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                       content_commitment=False, key_encipherment=False, data_encipherment=False,
                                       key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder().subject_name(_name("127.0.0.1")).issuer_name(ca.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                                                        x509.DNSName("localhost")]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    ca_file, cert_file, key_file = folder / "ca.pem", folder / "server.pem", folder / "server.key"
    ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                                           serialization.NoEncryption()))
    return ca_file, cert_file, key_file


@asynccontextmanager
async def baresip_peer(folder: Path, *, config: str = "", account: str = "", modules: str = "") -> AsyncIterator[
        tuple[int, Path]]:
    """baresip with an auto-answer account `bob`; UDP/TCP on the yielded port, TLS on the next; its input is
    silence, sndfile records what it hears into folder/rec. `config`, `account` and `modules` add to its files."""
    port = free_sip_listen_port()
    rtp = free_udp_port(pair=True)
    (folder / "rec").mkdir()
    subprocess.run(["sox", "-n", "-r", "8000", "-c", "1", "-b", "16", str(folder / "silence.wav"), "trim", "0", "60"],
                   check=True, capture_output=True)
    (folder / "config").write_text(
        "poll_method epoll\n"
        f"sip_listen 127.0.0.1:{port}\n"
        "net_interface 127.0.0.1\n"
        f"rtp_ports {rtp}-{rtp + 1}\n"
        f"audio_source aufile,{folder / 'silence.wav'}\n"
        "audio_player aubridge,nil\naudio_alert aubridge,nil\n"
        f"module_path {BARESIP_MODULES}\n"
        f"module g711.so\nmodule aufile.so\nmodule aubridge.so\nmodule sndfile.so\n{modules}"
        "module_app account.so\nmodule_app menu.so\n"
        f"snd_path {folder / 'rec'}\n{config}")
    (folder / "accounts").write_text(f"<sip:bob@127.0.0.1>;regint=0;answermode=auto{account}\n")
    proc = await asyncio.create_subprocess_exec(BARESIP, "-f", str(folder), stdin=subprocess.DEVNULL,
                                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        await wait_listening(port, proc, tcp_ports=(port + 1,))  # TLS listens on the next port
        yield port, folder / "rec"
    finally:
        if proc.returncode is None:
            proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), 10)
            except TimeoutError:
                proc.kill()
                await proc.wait()


async def recording_of(rec: Path) -> np.ndarray:
    """What baresip heard (its sndfile -dec.wav), once the file is complete."""
    for _ in range(100):
        decoded = sorted(rec.glob("*-dec.wav"))
        if decoded and decoded[0].stat().st_size > 44:
            await asyncio.sleep(0.3)
            samples, rate = read_wav(decoded[0])
            assert rate == 8000
            return samples
        await asyncio.sleep(0.1)
    raise AssertionError("baresip recorded nothing")


async def test_a_call_to_our_tls_port_with_the_certificate_checked(tmp_path):
    ca, cert, key = make_pki(tmp_path)
    calls: asyncio.Queue = asyncio.Queue()

    async def resolve(invite: InboundInvite) -> Decision:
        return Decision.accept()

    callee = await SipUserAgent.start(bind=("127.0.0.1", 0), rtp_ports=(20000, 29999), linger=0.2, resolver=resolve,
                                      on_incoming=calls, streams=StreamOptions(
                                          tls_bind=("127.0.0.1", 0), tls_server=server_context(str(cert), str(key))))
    trusting = await SipUserAgent.start(bind=("127.0.0.1", 0), rtp_ports=(20000, 29999), linger=0.2,
                                        streams=StreamOptions(tls_client=client_context(ca_file=str(ca))))
    doubting = await SipUserAgent.start(bind=("127.0.0.1", 0), rtp_ports=(20000, 29999), linger=0.2,
                                        timers=Timers(t1=0.05))  # the system's CAs only
    try:
        tls_port = callee.endpoint.streams.servers[0].sockets[0].getsockname()[1]
        leg = await trusting.dial("100", f"sip:127.0.0.1:{tls_port};transport=tls")
        assert (await asyncio.wait_for(leg.answered, 10)).answered
        inbound = await asyncio.wait_for(calls.get(), 5)
        leg.outbound.push(tone(1.0))
        await asyncio.sleep(1.5)
        assert inbound.rtp.packets_received > 30
        await leg.hangup("agent_hangup")
        assert await asyncio.wait_for(inbound.ended, 5) == "remote_hangup"  # the BYE came over TLS too

        refused = await doubting.dial("100", f"sip:127.0.0.1:{tls_port};transport=tls")
        assert await asyncio.wait_for(refused.ended, 10) == "network_error"
        assert doubting.endpoint.streams.connect_errors >= 1 and calls.empty()  # the handshake failed
    finally:
        for ua in (trusting, doubting, callee):
            await ua.close()


@pytest.mark.sip
@pytest.mark.skipif(BARESIP is None, reason="baresip (Debian baresip-core) is not installed")
async def test_a_call_to_baresip_over_tls(tmp_path):
    ca, cert, key = make_pki(tmp_path)
    both = tmp_path / "baresip.pem"  # baresip wants the certificate and its key in one file
    both.write_bytes(cert.read_bytes() + key.read_bytes())
    peer_dir = tmp_path / "peer"
    peer_dir.mkdir()
    async with baresip_peer(peer_dir, config=f"sip_certificate {both}\nsip_cafile {ca}\n") as (port, rec):
        ua = await SipUserAgent.start(bind=("127.0.0.1", 0), rtp_ports=(20000, 29999), timers=Timers(t1=0.25),
                                      streams=StreamOptions(tls_client=client_context(ca_file=str(ca))))
        try:
            leg = await ua.dial("bob", f"sip:127.0.0.1:{port + 1};transport=tls")
            assert (await asyncio.wait_for(leg.answered, 20)).answered
            leg.outbound.push(tone(2.0, freq=800.0))
            while leg.outbound.queued_samples and not leg.ended.done():
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.5)
            await leg.hangup("agent_hangup")
            assert ua.endpoint.streams.connect_errors == 0 and ua.endpoint.streams.routes
        finally:
            await ua.close()
        heard = await recording_of(rec)
    spectrum = np.abs(np.fft.rfft(heard.astype(np.float64)))
    assert abs(int(np.argmax(spectrum)) * 8000 / len(heard) - 800) < 20, "baresip did not hear our 800 Hz tone"


def test_a_tls_port_needs_a_certificate(settings):
    from control_api.sip_trunking import stream_options

    with pytest.raises(ValueError, match="TALKWIRE_SIP_TLS_CERT"):
        stream_options(settings.model_copy(update={"sip_tls_bind": "127.0.0.1:0"}))
    assert stream_options(settings).tls_bind is None and stream_options(settings).tls_client is not None


async def test_the_server_answers_a_call_on_its_tls_port(settings, tmp_path):
    """TALKWIRE_SIP_TLS_BIND/CERT/KEY: a caller that trusts our CA calls an imported number over TLS and the
    number's agent answers it."""
    from test_e2e_sip_calls import serving

    ca, cert, key = make_pki(tmp_path)
    async with serving(settings, sip_bind="127.0.0.1:0", sip_tls_bind="127.0.0.1:0", sip_tls_cert=str(cert),
                       sip_tls_key=str(key)) as api:
        agent_id = await api.agent(inbound_welcome_message="Hello over TLS.")
        await api.ok("POST", "/phone-numbers/import", json={"phone_number": "+15557770000", "agent_id": agent_id,
                                                            "trunk": {"host": "127.0.0.1", "port": 5060}})
        streams = api.server.app.state.runtime.sip.ua.endpoint.streams
        tls_port = streams.servers[0].sockets[0].getsockname()[1]
        caller = await SipUserAgent.start(bind=("127.0.0.1", 0), rtp_ports=(20000, 29999), timers=Timers(t1=0.25),
                                          streams=StreamOptions(tls_client=client_context(ca_file=str(ca))))
        try:
            leg = await caller.dial("+15557770000", f"sip:127.0.0.1:{tls_port};transport=tls")
            assert (await asyncio.wait_for(leg.answered, 20)).answered
            await asyncio.sleep(2.0)
            assert leg.rtp.packets_received > 50  # the agent's welcome
            await leg.hangup("agent_hangup")
        finally:
            await caller.close()
        calls = (await api.ok("GET", "/calls"))["calls"]
        record, _ = await api.follow(calls[0]["id"])
    assert record["direction"] == "inbound" and record["status"] == "completed"
    assert record["extra_details"]["outcome"] == "remote_hangup"
