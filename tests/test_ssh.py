"""SSHTunnel against a real asyncssh server on 127.0.0.1, forwarding to a TCP echo server."""

from __future__ import annotations

import asyncio
import getpass
import logging
import socket
import subprocess
import sys
import traceback
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import asyncssh
import pytest

from panoply_async import PanoplyError
from panoply_async import ssh as ssh_module
from panoply_async.compat import SSHTunnel as CompatTunnel
from panoply_async.errors import IncorrectParamError
from panoply_async.ssh import SSHTunnel, SSHTunnelConfigError, SSHTunnelError

USER = "tunnel"
PASSWORD = "s3cret-pass-word"
PAYLOAD = b"ping through the tunnel"
# Bounds every wait on an event so that a regression fails instead of hanging;
# never reached when things work, and nothing asserts on time.
SAFETY = 10


@dataclass(frozen=True)
class Keys:
    host: asyncssh.SSHKey
    rsa: asyncssh.SSHKey
    ed25519: asyncssh.SSHKey
    stranger: asyncssh.SSHKey  # valid, but not authorised on the server

    def text(self, name: str, fmt: str = "openssh") -> str:
        key: asyncssh.SSHKey = getattr(self, name)
        return key.export_private_key(fmt).decode()


@dataclass
class Rig:
    keys: Keys
    ssh_port: int
    echo_port: int
    # One event per SSH connection the server accepted, set when it is lost.
    ssh_connections: list[asyncio.Event] = field(default_factory=list)

    def config(self, **changes: Any) -> dict[str, Any]:
        return {
            "active": True,
            "host": "127.0.0.1",
            "port": self.ssh_port,
            "username": USER,
            **changes,
        }

    def known_hosts_line(self, key: asyncssh.SSHKey | None = None) -> str:
        public = (key or self.keys.host).export_public_key().decode().strip()
        return f"[127.0.0.1]:{self.ssh_port} {public}\n"

    async def all_ssh_connections_closed(self) -> None:
        with anyio.fail_after(SAFETY):
            for lost in self.ssh_connections:
                await lost.wait()


@pytest.fixture(scope="module")
def keys() -> Keys:
    return Keys(
        host=asyncssh.generate_private_key("ssh-ed25519"),
        rsa=asyncssh.generate_private_key("ssh-rsa", key_size=2048),
        ed25519=asyncssh.generate_private_key("ssh-ed25519"),
        stranger=asyncssh.generate_private_key("ssh-ed25519"),
    )


class Server(asyncssh.SSHServer):
    def __init__(self, lost: asyncio.Event) -> None:
        self._lost = lost

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost.set()

    def begin_auth(self, username: str) -> bool:
        return True  # authentication is required

    def password_auth_supported(self) -> bool:
        return True

    def validate_password(self, username: str, password: str) -> bool:
        return username == USER and password == PASSWORD

    def connection_requested(
        self, dest_host: str, dest_port: int, orig_host: str, orig_port: int
    ) -> bool:
        return True  # direct-tcpip: let asyncssh connect to the destination


async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(1024):
        writer.write(data)
        await writer.drain()
    writer.close()
    await writer.wait_closed()


@pytest.fixture
async def rig(keys: Keys) -> AsyncIterator[Rig]:
    authorized = asyncssh.import_authorized_keys(
        keys.rsa.export_public_key().decode() + keys.ed25519.export_public_key().decode()
    )
    lost_events: list[asyncio.Event] = []

    def server_factory() -> Server:
        lost = asyncio.Event()
        lost_events.append(lost)
        return Server(lost)

    server = await asyncssh.listen(
        "127.0.0.1",
        0,
        server_factory=server_factory,
        server_host_keys=[keys.host],
        authorized_client_keys=authorized,
    )
    target = await asyncio.start_server(echo, "127.0.0.1", 0)
    rig = Rig(keys, server.get_port(), target.sockets[0].getsockname()[1], lost_events)
    yield rig
    server.close()
    await server.wait_closed()
    target.close()
    await target.wait_closed()


async def round_trip(host: str, port: int) -> bytes:
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(PAYLOAD)
    await writer.drain()
    data = await reader.readexactly(len(PAYLOAD))
    writer.close()
    await writer.wait_closed()
    return data


async def refused(port: int) -> bool:
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", port)
    except ConnectionRefusedError:
        return True
    writer.close()
    await writer.wait_closed()
    return False


def unused_port() -> int:
    """A port nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def secrets_in(text: str, keys: Keys) -> list[str]:
    """The secrets (or fragments of key material) that occur in ``text``."""
    found = [PASSWORD] if PASSWORD in text else []
    for name in ("rsa", "ed25519", "stranger"):
        for fmt in ("openssh", "pkcs8-pem"):
            lines = keys.text(name, fmt).splitlines()[1:-1]
            found += [line for line in lines if line in text]
    return found


def everything_about(exc: BaseException) -> str:
    """The message, the chained causes and the formatted traceback of ``exc``."""
    return "".join(traceback.format_exception(exc)) + repr(exc) + repr(vars(exc))


@pytest.fixture(autouse=True)
def _reset_asyncssh_debug_level() -> Iterator[None]:
    yield
    asyncssh.set_debug_level(1)


@pytest.fixture
def fresh_host_key_warning(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ssh_module, "_host_key_warning_logged", False)


# --- through the tunnel ------------------------------------------------------------------


@pytest.mark.parametrize(
    "credentials",
    [
        pytest.param({"password": PASSWORD}, id="password"),
        pytest.param("rsa", id="rsa"),
        pytest.param("ed25519", id="ed25519"),
        pytest.param("rsa-pkcs1-pem", id="rsa-pkcs1-pem"),
        pytest.param("ed25519-pkcs8-pem", id="ed25519-pkcs8-pem"),
        pytest.param("rsa+wrong-password", id="key-first-then-password-unused"),
    ],
)
async def test_tunnel_reaches_the_target(rig: Rig, credentials: Any) -> None:
    if credentials == "rsa+wrong-password":
        credentials = {"privateKey": rig.keys.text("rsa"), "password": "not-the-password"}
    elif isinstance(credentials, str):
        name, _, fmt = credentials.partition("-")
        credentials = {"privateKey": rig.keys.text(name, fmt or "openssh")}
    tunnel = SSHTunnel("127.0.0.1", rig.echo_port, rig.config(**credentials))
    async with tunnel as (host, port):
        assert host == "127.0.0.1"
        assert port != rig.echo_port
        assert tunnel.local_address == (host, port)
        assert await round_trip(host, port) == PAYLOAD
    assert tunnel.local_address is None
    assert await refused(port)
    await rig.all_ssh_connections_closed()


async def test_several_connections_share_one_tunnel(rig: Rig) -> None:
    async with SSHTunnel("127.0.0.1", rig.echo_port, rig.config(password=PASSWORD)) as address:
        results = await asyncio.gather(*(round_trip(*address) for _ in range(5)))
    assert results == [PAYLOAD] * 5
    assert len(rig.ssh_connections) == 1


async def test_fixed_local_port_and_reuse_after_close(rig: Rig) -> None:
    wanted = unused_port()
    tunnel = SSHTunnel("127.0.0.1", rig.echo_port, rig.config(password=PASSWORD), local_port=wanted)
    for _ in range(2):
        async with tunnel as (_, port):
            assert port == wanted
            assert await round_trip("127.0.0.1", port) == PAYLOAD
    assert await refused(wanted)


async def test_entering_twice_at_once_is_refused(rig: Rig) -> None:
    tunnel = SSHTunnel("127.0.0.1", rig.echo_port, rig.config(password=PASSWORD))
    async with tunnel:
        with pytest.raises(RuntimeError, match="already open"):
            await tunnel.__aenter__()


async def test_unreachable_target_closes_the_client_connection(rig: Rig) -> None:
    closed_port = unused_port()
    async with SSHTunnel("127.0.0.1", closed_port, rig.config(password=PASSWORD)) as address:
        reader, writer = await asyncio.open_connection(*address)
        with anyio.fail_after(SAFETY):
            assert await reader.read() == b""
        writer.close()
        await writer.wait_closed()


# --- inactive tunnels --------------------------------------------------------------------


@pytest.mark.parametrize(
    "config",
    [
        {"active": False},
        # The UI keeps stale (even broken) values when the tunnel is switched off.
        {"active": False, "host": "", "port": "x", "username": None, "privateKey": "junk"},
        {},
        None,
    ],
)
async def test_inactive_tunnel_passes_through(
    config: dict[str, Any] | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "asyncssh", None)  # not needed at all
    tunnel = SSHTunnel("db.internal", 5432, config)
    assert not tunnel.active
    async with tunnel as (host, port):
        assert (host, port) == ("db.internal", 5432)
    assert repr(tunnel) == "SSHTunnel(inactive, target=db.internal:5432)"


# --- entry failures ----------------------------------------------------------------------


async def test_wrong_password_is_a_clear_error(rig: Rig) -> None:
    body_ran = False
    tunnel = SSHTunnel("127.0.0.1", rig.echo_port, rig.config(password="not-" + PASSWORD))
    with pytest.raises(SSHTunnelError) as info:
        async with tunnel:
            body_ran = True
    assert not body_ran
    assert f"SSH login to 127.0.0.1:{rig.ssh_port} as 'tunnel' was refused" in str(info.value)
    assert isinstance(info.value, PanoplyError)
    await rig.all_ssh_connections_closed()
    assert tunnel.local_address is None


async def test_no_secret_in_logs_errors_or_repr(rig: Rig, caplog: pytest.LogCaptureFixture) -> None:
    # The right password with a key that is not authorised, then the wrong password:
    # the secrets are in play in both attempts.
    config = rig.config(password=PASSWORD, privateKey=rig.keys.text("stranger"))
    asyncssh.set_debug_level(2)  # full debug logging; 3 dumps packets, passwords included
    with caplog.at_level(logging.DEBUG):
        async with SSHTunnel("127.0.0.1", rig.echo_port, config) as address:
            assert await round_trip(*address) == PAYLOAD
        wrong = rig.config(password="x" + PASSWORD, privateKey=rig.keys.text("stranger"))
        tunnel = SSHTunnel("127.0.0.1", rig.echo_port, wrong)
        with pytest.raises(SSHTunnelError) as info:
            await tunnel.__aenter__()
    assert caplog.records  # asyncssh and this module did log
    assert secrets_in(caplog.text, rig.keys) == []
    assert secrets_in(everything_about(info.value), rig.keys) == []
    assert secrets_in(repr(tunnel) + repr(vars(tunnel)), rig.keys) == []
    assert "auth=key+password" in repr(tunnel)


async def test_unauthorised_key_is_refused(rig: Rig) -> None:
    tunnel = SSHTunnel("127.0.0.1", rig.echo_port, rig.config(privateKey=rig.keys.text("stranger")))
    with pytest.raises(SSHTunnelError, match="was refused"):
        async with tunnel:
            pass


async def test_no_ssh_server_there(rig: Rig) -> None:
    closed_port = unused_port()
    config = rig.config(port=closed_port, password=PASSWORD)
    with pytest.raises(
        SSHTunnelError, match=rf"cannot connect to SSH server 127\.0\.0\.1:{closed_port}: .*Refused"
    ):
        async with SSHTunnel("127.0.0.1", rig.echo_port, config):
            pass


async def test_local_port_in_use_closes_the_ssh_connection(rig: Rig) -> None:
    # Login succeeds and the listener fails: the SSH connection must not be left open.
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        config = rig.config(password=PASSWORD)
        tunnel = SSHTunnel("127.0.0.1", rig.echo_port, config, local_port=busy)
        with pytest.raises(SSHTunnelError, match=rf"cannot listen on 127\.0\.0\.1:{busy} .*in use"):
            async with tunnel:
                pass
    assert len(rig.ssh_connections) == 1
    await rig.all_ssh_connections_closed()
    assert tunnel.local_address is None


async def test_no_local_username_is_a_clear_error(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Containers running under a uid without a passwd entry: asyncssh refuses to start.
    def no_user() -> str:
        raise KeyError("getpwuid(): uid not found")

    monkeypatch.setattr(getpass, "getuser", no_user)
    tunnel = SSHTunnel("127.0.0.1", rig.echo_port, rig.config(password=PASSWORD))
    with pytest.raises(SSHTunnelError, match="failed: ValueError: Unknown local username"):
        async with tunnel:
            pass


@pytest.fixture
async def silent_server() -> AsyncIterator[tuple[int, asyncio.Event, asyncio.Event]]:
    """A TCP server that accepts and never speaks SSH: (port, accepted, peer_closed)."""
    accepted, peer_closed = asyncio.Event(), asyncio.Event()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.set()
        while await reader.read(1024):
            pass
        peer_closed.set()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    yield server.sockets[0].getsockname()[1], accepted, peer_closed
    server.close()
    await server.wait_closed()


async def test_connect_timeout(
    rig: Rig, silent_server: tuple[int, asyncio.Event, asyncio.Event]
) -> None:
    port, _, peer_closed = silent_server
    tunnel = SSHTunnel(
        "127.0.0.1", rig.echo_port, rig.config(port=port, password=PASSWORD), connect_timeout=0.05
    )
    with pytest.raises(SSHTunnelError, match=r"timed out after 0\.05s"):
        async with tunnel:
            pass
    with anyio.fail_after(SAFETY):
        await peer_closed.wait()


async def test_cancelled_while_connecting_closes_the_connection(
    rig: Rig, silent_server: tuple[int, asyncio.Event, asyncio.Event]
) -> None:
    port, accepted, peer_closed = silent_server
    tunnel = SSHTunnel("127.0.0.1", rig.echo_port, rig.config(port=port, password=PASSWORD))
    entering = asyncio.create_task(tunnel.__aenter__())
    with anyio.fail_after(SAFETY):
        await accepted.wait()
    entering.cancel()
    with pytest.raises(asyncio.CancelledError):
        await entering
    with anyio.fail_after(SAFETY):
        await peer_closed.wait()
    assert tunnel.local_address is None


# --- leaving the block -------------------------------------------------------------------


async def test_error_in_the_block_closes_the_tunnel(rig: Rig) -> None:
    port = 0
    with pytest.raises(LookupError, match="from the block"):
        async with SSHTunnel("127.0.0.1", rig.echo_port, rig.config(password=PASSWORD)) as (
            _,
            port,
        ):
            raise LookupError("from the block")
    assert await refused(port)
    await rig.all_ssh_connections_closed()


async def test_cancellation_in_the_block_closes_the_tunnel(rig: Rig) -> None:
    opened: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    forever = asyncio.Event()

    async def connector() -> None:
        async with SSHTunnel("127.0.0.1", rig.echo_port, rig.config(password=PASSWORD)) as (
            _,
            port,
        ):
            opened.set_result(port)
            await forever.wait()

    task = asyncio.create_task(connector())
    with anyio.fail_after(SAFETY):
        port = await opened
    assert await round_trip("127.0.0.1", port) == PAYLOAD
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await refused(port)
    await rig.all_ssh_connections_closed()


async def test_anyio_cancel_scope_in_the_block_closes_the_tunnel(rig: Rig) -> None:
    port = 0
    with anyio.CancelScope() as scope:
        async with SSHTunnel("127.0.0.1", rig.echo_port, rig.config(password=PASSWORD)) as (
            _,
            port,
        ):
            scope.cancel()
            await anyio.sleep_forever()
    assert scope.cancelled_caught
    assert await refused(port)
    await rig.all_ssh_connections_closed()


# --- host keys ---------------------------------------------------------------------------


@pytest.mark.usefixtures("fresh_host_key_warning")
async def test_unchecked_host_key_warns_once(rig: Rig, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="panoply_async.ssh"):
        for _ in range(2):
            async with SSHTunnel("127.0.0.1", rig.echo_port, rig.config(password=PASSWORD)):
                pass
    warnings = [r for r in caplog.records if "host keys are not checked" in r.getMessage()]
    assert len(warnings) == 1
    assert warnings[0].levelno == logging.WARNING


@pytest.mark.usefixtures("fresh_host_key_warning")
@pytest.mark.parametrize("where", ["argument-text", "argument-path", "dict-text", "dict-path"])
async def test_known_host_key_is_accepted(
    rig: Rig, where: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    value: Any = "# bastion\n" + rig.known_hosts_line()
    if where.endswith("path"):
        path = tmp_path / "known hosts"  # a space in the path on purpose
        path.write_text(value)
        value = path if where.startswith("argument") else str(path)
    config = rig.config(password=PASSWORD)
    kwargs: dict[str, Any] = {}
    if where.startswith("dict"):
        config["known_hosts"] = value
    else:
        kwargs["known_hosts"] = value
    with caplog.at_level(logging.WARNING, logger="panoply_async.ssh"):
        async with SSHTunnel("127.0.0.1", rig.echo_port, config, **kwargs) as address:
            assert await round_trip(*address) == PAYLOAD
    assert "host keys are not checked" not in caplog.text


async def test_unknown_host_key_is_refused(rig: Rig) -> None:
    other = rig.known_hosts_line(rig.keys.stranger)
    config = rig.config(password=PASSWORD, known_hosts=rig.known_hosts_line())
    # The argument overrides the dict key.
    tunnel = SSHTunnel("127.0.0.1", rig.echo_port, config, known_hosts=other)
    with pytest.raises(
        SSHTunnelError, match=r"host key of SSH server 127\.0\.0\.1:\d+ is not trusted"
    ):
        async with tunnel:
            pass
    await rig.all_ssh_connections_closed()


# --- keys as they arrive from forms and JSON ---------------------------------------------


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(lambda text: text.replace("\n", " "), id="newlines-as-spaces"),
        pytest.param(lambda text: text.replace("\n", ""), id="newlines-removed"),
        pytest.param(lambda text: text.replace("\n", "\\n"), id="newlines-escaped"),
        pytest.param(lambda text: text.replace("\n", "\r\n"), id="crlf"),
        pytest.param(lambda text: "\n  " + text.replace("\n", "\n  "), id="indented"),
    ],
)
async def test_damaged_key_text_is_repaired(rig: Rig, damage: Any) -> None:
    for name in ("rsa", "ed25519"):
        config = rig.config(privateKey=damage(rig.keys.text(name)))
        async with SSHTunnel("127.0.0.1", rig.echo_port, config) as address:
            assert await round_trip(*address) == PAYLOAD


def test_a_flattened_key_whose_base64_has_regex_characters_is_repaired() -> None:
    # asyncssh compiles the BEGIN line into a regex; flattened to one line, a key
    # whose base64 holds "+++" made that raise re.error instead of being repaired.
    key = asyncssh.generate_private_key("ssh-ed25519")
    for attempt in range(200_000):
        key.set_comment(f"c{attempt}")  # each export differs: find one with "+++"
        text = key.export_private_key().decode()
        if "+++" in text:
            break
    else:
        pytest.fail("no exported key had '+++' in its base64")
    for flattened in (text.replace("\n", ""), text.replace("\n", " ")):
        tunnel = SSHTunnel("db", 5432, {**BASE, "privateKey": flattened})
        assert "auth=key+password" in repr(tunnel)


def encrypted(key: asyncssh.SSHKey, passphrase: str) -> str:
    # PKCS#8: OpenSSH-format encryption would need bcrypt, which is optional.
    return key.export_private_key("pkcs8-pem", passphrase=passphrase).decode()


async def test_encrypted_key_uses_the_password_as_passphrase(rig: Rig) -> None:
    # As in the legacy SDK; the password is then also offered to the server, which
    # refuses it here, so only the key can have opened the tunnel.
    config = rig.config(
        privateKey=encrypted(rig.keys.ed25519, "key-passphrase"), password="key-passphrase"
    )
    async with SSHTunnel("127.0.0.1", rig.echo_port, config) as address:
        assert await round_trip(*address) == PAYLOAD


@pytest.mark.parametrize(
    ("password", "words"),
    [(None, "is encrypted and no 'password'"), ("wrong-phrase", "is not its passphrase")],
)
def test_encrypted_key_without_its_passphrase(keys: Keys, password: str | None, words: str) -> None:
    config = {
        "active": True,
        "host": "bastion",
        "username": "u",
        "privateKey": encrypted(keys.rsa, PASSWORD),
        "password": password,
    }
    with pytest.raises(SSHTunnelConfigError, match=words) as info:
        SSHTunnel("db", 5432, config)
    assert secrets_in(everything_about(info.value), keys) == []


# --- validation --------------------------------------------------------------------------

BASE = {"active": True, "host": "bastion", "port": 22, "username": "u", "password": PASSWORD}


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"port": 0}, r"ssh_tunnel\['port'\] 0 is out of range \(1 to 65535\)"),
        ({"port": 65536}, r"ssh_tunnel\['port'\] 65536 is out of range"),
        ({"port": -22}, "out of range"),
        ({"port": "ssh"}, r"ssh_tunnel\['port'\] must be an integer .* not str"),
        ({"port": 22.0}, "must be an integer .* not float"),
        ({"port": True}, "must be an integer .* not bool"),
        ({"host": None}, r"ssh_tunnel\['host'\] is missing"),
        ({"host": ""}, r"ssh_tunnel\['host'\] is missing \(empty\)"),
        ({"host": ["bastion"]}, r"ssh_tunnel\['host'\] must be a string, not list"),
        ({"username": None}, r"ssh_tunnel\['username'\] is missing"),
        ({"username": 7}, r"ssh_tunnel\['username'\] must be a string, not int"),
        ({"password": None}, "needs a 'password' or a 'privateKey'"),
        ({"password": ""}, "needs a 'password' or a 'privateKey'"),
        ({"password": 1234}, r"ssh_tunnel\['password'\] must be a string, not int"),
        ({"privateKey": b"-----BEGIN"}, r"ssh_tunnel\['privateKey'\] must be a string, not bytes"),
        (
            {
                "privateKey": "-----BEGIN OPENSSH PRIVATE KEY-----\nZ2FyYmFnZQ==\n"
                "-----END OPENSSH PRIVATE KEY-----\n"
            },
            "not a readable private key",
        ),
        (
            {"privateKey": "-----BEGIN OPENSSH PRIVATE KEY-----\ngarbage"},
            r"not a readable private key \(Missing PEM footer\)",
        ),
        ({"privateKey": "just some text"}, "no '-----BEGIN"),
        ({"privateKey": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAA"}, "holds a public key"),
        ({"active": "yes"}, r"ssh_tunnel\['active'\] must be true or false, not str"),
        ({"active": 1}, "must be true or false, not int"),
        ({"known_hosts": 42}, r"ssh_tunnel\['known_hosts'\] must be a path or the text"),
        ({"known_hosts": "/no/such/known_hosts"}, "cannot read known_hosts file"),
        ({"known_hosts": "# nothing but a comment\n"}, "has no entries"),
        ({"known_hosts": "# a comment\ngarbage\n"}, "not valid known_hosts data: .*garbage"),
    ],
)
def test_bad_ssh_tunnel_dict(changes: dict[str, Any], words: str, keys: Keys) -> None:
    with pytest.raises(SSHTunnelConfigError, match=words) as info:
        SSHTunnel("db", 5432, {**BASE, **changes})
    assert isinstance(info.value, ValueError)
    assert isinstance(info.value, PanoplyError)
    assert secrets_in(everything_about(info.value), keys) == []


def test_missing_keys() -> None:
    for key in ("active", "host", "username"):
        config = {k: v for k, v in BASE.items() if k != key}
        with pytest.raises(SSHTunnelConfigError, match=rf"ssh_tunnel\['{key}'\] is missing"):
            SSHTunnel("db", 5432, config)
    config = {k: v for k, v in BASE.items() if k != "port"}
    assert "bastion:22" in repr(SSHTunnel("db", 5432, config))  # the default SSH port


def test_port_as_digits_like_the_legacy_sdk() -> None:
    tunnel = SSHTunnel("db", 5432, {**BASE, "port": " 2222 "})
    assert repr(tunnel) == ("SSHTunnel(ssh=u@bastion:2222, target=db:5432, auth=password, closed)")


def test_the_callers_dict_is_not_modified() -> None:
    config = {**BASE, "port": "2222"}
    SSHTunnel("db", 5432, config)
    assert config == {**BASE, "port": "2222"}


@pytest.mark.parametrize(
    ("args", "kwargs", "words"),
    [
        (("db", 0, BASE), {}, "the target port 0 is out of range"),
        (("db", 65536, BASE), {}, "the target port 65536 is out of range"),
        (("db", "5432", BASE), {}, "the target port must be an integer .* not str"),
        (("", 5432, BASE), {}, "target host must be a non-empty string"),
        ((None, 5432, BASE), {}, "target host must be a non-empty string"),
        (("db", 5432, "ssh://bastion"), {}, "ssh_tunnel must be a dict, not str"),
        (("db", 5432, BASE), {"local_port": 70000}, "local_port 70000 is out of range"),
        (("db", 5432, BASE), {"connect_timeout": 0}, "connect_timeout must be a positive"),
        (("db", 5432, BASE), {"known_hosts": 3}, "known_hosts must be a path or the text"),
    ],
)
def test_bad_arguments(args: tuple[Any, ...], kwargs: dict[str, Any], words: str) -> None:
    with pytest.raises(SSHTunnelConfigError, match=words) as info:
        SSHTunnel(*args, **kwargs)
    assert PASSWORD not in everything_about(info.value)


def test_repr_has_no_secrets(keys: Keys) -> None:
    tunnel = SSHTunnel("db", 5432, {**BASE, "privateKey": keys.text("ed25519")})
    text = repr(tunnel)
    assert text == "SSHTunnel(ssh=u@bastion:22, target=db:5432, auth=key+password, closed)"
    assert secrets_in(text + repr(vars(tunnel)) + str(tunnel), keys) == []


# --- without asyncssh --------------------------------------------------------------------


def test_module_imports_without_asyncssh() -> None:
    code = (
        "import sys\n"
        "sys.modules['asyncssh'] = None\n"
        "import panoply_async.ssh as s\n"
        "t = s.SSHTunnel('db', 5432, {'active': False})\n"
        "print(repr(t))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "SSHTunnel(inactive, target=db:5432)"


async def test_clear_import_error_without_asyncssh(
    keys: Keys, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "asyncssh", None)
    with pytest.raises(ImportError, match=r"install panoply-async\[ssh\]"):
        SSHTunnel("db", 5432, {**BASE, "privateKey": keys.text("ed25519")})
    tunnel = SSHTunnel("db", 5432, BASE)  # nothing to parse yet
    with pytest.raises(ImportError, match=r"install panoply-async\[ssh\]"):
        async with tunnel:
            pass
    assert tunnel.local_address is None


# --- legacy signatures --------------------------------------------------------------------


def test_config_errors_are_the_legacy_incorrect_param_error() -> None:
    with pytest.raises(IncorrectParamError):
        SSHTunnel("db", 5432, {"active": True})
    assert issubclass(SSHTunnelConfigError, IncorrectParamError)


def test_platform_ssh_makes_a_pass_through() -> None:
    tunnel = SSHTunnel("db", 5432, {**BASE, "privateKey": "not a key at all"}, True)
    assert not tunnel.active
    assert repr(tunnel) == "SSHTunnel(inactive, target=db:5432)"
    with pytest.raises(SSHTunnelConfigError, match="platform_ssh must be true or false"):
        SSHTunnel("db", 5432, BASE, "yes")  # type: ignore[arg-type]


def test_compat_tunnels_that_do_not_tunnel_need_no_asyncssh() -> None:
    code = (
        "import sys\n"
        "sys.modules['asyncssh'] = None\n"
        "import panoply_async.compat as panoply\n"
        "t = {'active': True, 'host': 'h', 'username': 'u', 'privateKey': 'dasd2dsd'}\n"
        "print(panoply.SSHTunnel('db', 5432, t).server)\n"  # platform_ssh=True by default
        "print(panoply.SSHTunnel('db', 5432, {'active': False}, False).server)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["None", "None"]


@pytest.mark.parametrize(
    ("port", "message"),
    [(-5, "Port should be in range [0: 65535]"), (70000, "Port should be in range [0: 65535]"),
     ("5432", "Port should be instance of `int`")],
)
def test_compat_tunnel_legacy_port_messages(port: Any, message: str) -> None:
    with pytest.raises(IncorrectParamError) as info:
        CompatTunnel("db", port, BASE, False)
    assert str(info.value) == message


def test_compat_tunnel_legacy_dict_messages() -> None:
    with pytest.raises(IncorrectParamError) as info:
        CompatTunnel("db", 5432, {}, False)
    assert str(info.value) == "SSH tunnel object should contain `active` property"
    with pytest.raises(IncorrectParamError) as info:
        CompatTunnel("db", 5432, "ssh://bastion", False)  # type: ignore[arg-type]
    assert str(info.value) == "SSH tunnel should be `dict` object"


async def test_compat_tunnel_opens_at_construction_like_the_legacy_one(rig: Rig) -> None:
    config = rig.config(password=PASSWORD)
    tunnel = await asyncio.to_thread(CompatTunnel, "127.0.0.1", rig.echo_port, config, False)
    server = tunnel.server
    assert server is not None
    try:
        assert str(tunnel) == f"SSH tunnel to 127.0.0.1, for user {USER}"
        assert PASSWORD not in repr(server) + str(tunnel) + repr(tunnel)
        assert server.local_bind_address == (server.local_bind_host, server.local_bind_port)
        assert await round_trip(server.local_bind_host, server.local_bind_port) == PAYLOAD
        assert tunnel.port == rig.echo_port
        local_port = server.local_bind_port
    finally:
        await asyncio.to_thread(server.stop)
    assert not server.is_active
    assert await refused(local_port)
    await rig.all_ssh_connections_closed()
    with pytest.raises(SSHTunnelError, match="not open"):
        _ = server.local_bind_port


async def test_compat_tunnel_login_failure_is_raised_by_the_constructor(rig: Rig) -> None:
    config = rig.config(password="wrong-password")
    with pytest.raises(SSHTunnelError, match="was refused"):
        await asyncio.to_thread(CompatTunnel, "127.0.0.1", rig.echo_port, config, False)
