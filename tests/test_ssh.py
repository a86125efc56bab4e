"""SSHTunnel against a real asyncssh server on 127.0.0.1, forwarding to an echo server."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import asyncssh
import pytest

from panoply_async.ssh import SSHTunnel, SSHTunnelConfigError, SSHTunnelError

PASSWORD = "s3cret-pass-word"


@dataclass
class Rig:
    ssh_port: int
    echo_port: int
    rsa_key: str
    ed25519_key: str


class Server(asyncssh.SSHServer):
    def begin_auth(self, username: str) -> bool:
        return True

    def password_auth_supported(self) -> bool:
        return True

    def validate_password(self, username: str, password: str) -> bool:
        return username == "tunnel" and password == PASSWORD

    def public_key_auth_supported(self) -> bool:
        return True

    def connection_requested(self, dest_host: str, dest_port: int, orig_host: str,
                             orig_port: int) -> bool:
        return True  # plain forwarding to the destination


async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(1024):
        writer.write(data)
        await writer.drain()
    writer.close()


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    rsa = asyncssh.generate_private_key("ssh-rsa", key_size=2048)
    ed = asyncssh.generate_private_key("ssh-ed25519")
    authorized = asyncssh.import_authorized_keys(
        rsa.export_public_key().decode() + ed.export_public_key().decode()
    )
    host_key = asyncssh.generate_private_key("ssh-ed25519")

    def server_factory() -> Server:
        return Server()

    ssh = await asyncssh.create_server(
        server_factory, "127.0.0.1", 0, server_host_keys=[host_key],
        authorized_client_keys=authorized,
    )
    target = await asyncio.start_server(echo, "127.0.0.1", 0)
    ssh_port = ssh.sockets[0].getsockname()[1]
    echo_port = target.sockets[0].getsockname()[1]
    yield Rig(ssh_port, echo_port, rsa.export_private_key().decode(),
              ed.export_private_key().decode())
    ssh.close()
    await ssh.wait_closed()
    target.close()
    await target.wait_closed()


def config(rig: Rig, **changes: Any) -> dict[str, Any]:
    return {"active": True, "host": "127.0.0.1", "port": rig.ssh_port, "username": "tunnel",
            **changes}


async def round_trip(host: str, port: int) -> bytes:
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(b"ping through the tunnel")
    await writer.drain()
    data = await reader.readexactly(len(b"ping through the tunnel"))
    writer.close()
    await writer.wait_closed()
    return data


def refused(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


@pytest.mark.parametrize("auth", ["password", "rsa", "ed25519"])
async def test_tunnel_reaches_the_target(rig: Rig, auth: str) -> None:
    credentials = {"password": {"password": PASSWORD},
                   "rsa": {"privateKey": rig.rsa_key},
                   "ed25519": {"privateKey": rig.ed25519_key}}[auth]
    tunnel = SSHTunnel("127.0.0.1", rig.echo_port, config(rig, **credentials))
    async with tunnel as (host, port):
        assert host == "127.0.0.1"
        assert port != rig.echo_port
        assert await round_trip(host, port) == b"ping through the tunnel"
    assert refused(port)


async def test_inactive_tunnel_passes_through(rig: Rig) -> None:
    async with SSHTunnel("db.internal", 5432, {"active": False}) as (host, port):
        assert (host, port) == ("db.internal", 5432)


async def test_wrong_password_is_a_clear_error(
    rig: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    tunnel = SSHTunnel("127.0.0.1", rig.echo_port, config(rig, password="not-" + PASSWORD))
    with caplog.at_level(logging.DEBUG), pytest.raises(SSHTunnelError, match="authentication"):
        async with tunnel:
            pass
    assert PASSWORD not in caplog.text


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"port": 0}, "out of range"),
        ({"port": 70000}, "out of range"),
        ({"port": "ssh"}, "number"),
        ({"host": ""}, "'host'] is missing"),
        ({"username": None}, "'username'] is missing"),
        ({"password": None}, "'password' or a 'privateKey'"),
        ({"privateKey": "-----BEGIN OPENSSH PRIVATE KEY-----\ngarbage\n"}, "not a readable"),
        ({"active": "yes"}, "true or false"),
    ],
)
def test_bad_shapes(changes: dict[str, Any], words: str) -> None:
    base = {"active": True, "host": "bastion", "port": 22, "username": "u",
            "password": PASSWORD}
    with pytest.raises(SSHTunnelConfigError, match=words) as info:
        SSHTunnel("db", 5432, {**base, **changes})
    assert PASSWORD not in str(info.value)


def test_bad_target_port_and_dict() -> None:
    with pytest.raises(SSHTunnelConfigError, match="target port"):
        SSHTunnel("db", 0, {"active": False})
    with pytest.raises(SSHTunnelConfigError, match="must be a dict"):
        SSHTunnel("db", 5432, "ssh://x")  # type: ignore[arg-type]


def test_repr_has_no_secrets(rig: Rig) -> None:
    tunnel = SSHTunnel("127.0.0.1", rig.echo_port, config(rig, password=PASSWORD,
                                                          privateKey=rig.ed25519_key))
    text = repr(tunnel)
    assert "tunnel@127.0.0.1" in text
    assert PASSWORD not in text
    assert "PRIVATE KEY" not in text
