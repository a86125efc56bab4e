"""The legacy SDK's own unit tests (``tests/test.py`` and ``tests/test_metadata.py`` of
panoply-python-sdk), rewritten against ``panoply_async.compat`` imported as ``panoply``.

Every legacy assertion whose subject still exists is kept. Those that cannot hold:

* ``TestPanoplyPythonSDK.test_init`` built the SDK with the secret
  ``rand2/uuid/awsaccount/region``, which the legacy SDK split without any check; it is
  refused now (``CredentialsError``: the AWS account id must be 12 digits), so the same
  ``qurl`` assertion is made with a well-formed secret, and the refusal is asserted too.
* ``TestPanoplyPythonSDK.test_write`` asserted ``sdk._buffer.qsize() == 2``: ``_buffer``
  was the legacy SDK's private unbounded ``queue.Queue``, which no longer exists (records
  are encoded at the call into a bounded buffer); the same fact, "both writes were
  accepted", is asserted through ``stats``, and their arrival on the local server.
* ``TestSSHTunnel.test_tunnel_ctxt_manager`` patched ``paramiko.RSAKey`` and
  ``panoply.ssh.SSHTunnelForwarder`` and asserted that ``with`` gave the mocked
  forwarder: neither paramiko nor sshtunnel is used any more. It is replaced by a real
  tunnel through a real SSH server on 127.0.0.1 (the ``rig`` of ``test_ssh``), entered
  with the legacy ``with SSHTunnel(host, port, ssh_tunnel, False) as server``.

The legacy SSH tests caught the error in ``try/except`` and passed when nothing was
raised; here the error must be raised.
"""

from __future__ import annotations

import asyncio
import base64

import pytest

import panoply_async.compat as panoply
import test_ssh
from panoply_async import CredentialsError
from panoply_async.compat.resources import convert_to_ui_format
from panoply_async.testing import LocalQueue
from test_ssh import PAYLOAD, Rig, round_trip

# The real SSH server and echo target of test_ssh, as fixtures of this module too.
keys = test_ssh.keys
rig = test_ssh.rig

TEST_KEY = "test/key"
# The legacy test's secret was "rand2/uuid/awsaccount/region", which the legacy SDK split
# without any check; an AWS account id must be 12 digits and a region a region now.
TEST_SECRET = b"rand2/uuid/123456789012/us-east-1"
LEGACY_TEST_SECRET = b"rand2/uuid/awsaccount/region"


class TestPanoplyPythonSDK:
    def test_init(self) -> None:
        sdk = panoply.SDK(TEST_KEY, base64.b64encode(TEST_SECRET))
        try:
            expected_url = "https://sqs.us-east-1.amazonaws.com/123456789012/sdk-test-rand2"
            assert sdk.qurl == expected_url
        finally:
            sdk.close()

    def test_init_refuses_the_legacy_placeholder_secret(self) -> None:
        with pytest.raises(CredentialsError, match="AWS account id"):
            panoply.SDK(TEST_KEY, base64.b64encode(LEGACY_TEST_SECRET))

    def test_write(self, panoply_queue: LocalQueue) -> None:
        sdk = panoply.SDK(panoply_queue.apikey, panoply_queue.apisecret,
                          endpoint_url=panoply_queue.endpoint_url)
        try:
            sdk.write("table", {"data": 1})
            sdk.write("table", {"data": 2})
            # The legacy assertion was `sdk._buffer.qsize() == 2`: both writes accepted.
            assert sdk.stats.records_accepted == 2
        finally:
            sdk.close()
        arrived = panoply_queue.records()
        assert sorted(r["data"] for r in arrived) == [1, 2]
        assert {r["__table"] for r in arrived} == {"table"}


class TestSSHTunnel:
    MOCKED_TUNNEL_OBJECT = {  # noqa: RUF012 - the legacy test's class attribute
        "active": True,
        "username": "panoply-user",
        "host": "233.23.11.223",
        "port": 22,
        "privateKey": "dasd2dsd",
    }

    def test_tunnel_with_incorrect_port(self) -> None:
        mocked_message = "Port should be in range [0: 65535]"
        with pytest.raises(panoply.errors.IncorrectParamError) as raised:
            panoply.SSHTunnel("127.0.0.1", -5, {}, False)
        assert str(raised.value) == mocked_message

    def test_tunnel_with_incorrect_tunnel_object(self) -> None:
        mocked_message = "SSH tunnel object should contain `active` property"
        with pytest.raises(panoply.errors.IncorrectParamError) as raised:
            panoply.SSHTunnel("127.0.0.1", 27017, {"key": "v"}, False)
        assert str(raised.value) == mocked_message

    def test_tunnel_with_incorrect_platform_flag(self) -> None:
        tunnel = panoply.SSHTunnel("127.0.0.1", 27017, self.MOCKED_TUNNEL_OBJECT, True)
        assert tunnel.server is None

    async def test_tunnel_ctxt_manager(self, rig: Rig) -> None:
        config = {**rig.config(), "privateKey": rig.keys.text("ed25519")}

        def open_tunnel() -> panoply.SSHTunnel:
            return panoply.SSHTunnel("127.0.0.1", rig.echo_port, config, False)

        # The legacy constructor blocks while it connects; the SSH server runs on this
        # test's event loop, so the blocking calls go to a thread.
        tunnel = await asyncio.to_thread(open_tunnel)
        server = tunnel.__enter__()
        try:
            assert server is tunnel.server
            assert server is not None
            assert server.is_active
            assert server.local_bind_host == "127.0.0.1"
            assert await round_trip(server.local_bind_host, server.local_bind_port) == PAYLOAD
        finally:
            await asyncio.to_thread(tunnel.__exit__, None, None, None)
        assert not server.is_active
        await rig.all_ssh_connections_closed()


class TestMetadata:
    def test_list_resources(self) -> None:
        test_cases = [
            ([{"title": "Customer", "id": "customer"},
              {"title": "Account", "id": "account"}],
             [{"name": "Customer", "value": "customer", "disabled": False, "requires": []},
              {"name": "Account", "value": "account", "disabled": False, "requires": []}]),
            ([{"title": "Customer", "id": "customer", "available": False},
              {"title": "Account", "id": "account", "requires": ["Billing"]}],
             [{"name": "Customer", "value": "customer", "disabled": True, "requires": []},
              {"name": "Account", "value": "account", "disabled": False,
               "requires": ["Billing"]}]),
            ([], None),
        ]
        for resources, expected in test_cases:
            assert expected == convert_to_ui_format(
                resources,
                lambda resource: resource["title"],
                lambda resource: resource["id"],
                lambda resource: not resource.get("available", True),
                lambda resource: resource.get("requires", []),
            )

    def test_list_fields(self) -> None:
        test_cases = [
            ([{"name": "id", "is_mandatory": True}, {"name": "name"}],
             [{"name": "id", "value": "id", "disabled": False, "requires": []},
              {"name": "name", "value": "name", "disabled": False, "requires": []}]),
            ([{"name": "id", "type": "int", "is_mandatory": True},
              {"name": "name", "type": "str"},
              {"name": "billing", "type": "list", "is_available": False}],
             [{"name": "id [int]", "value": "id", "disabled": False, "requires": []},
              {"name": "name [str]", "value": "name", "disabled": False, "requires": []},
              {"name": "billing [list]", "value": "billing", "disabled": True,
               "requires": []}]),
            ([], None),
        ]
        for fields, expected in test_cases:
            assert expected == convert_to_ui_format(
                fields,
                lambda field: f"{field['name']} [{field['type']}]"
                if field.get("type") else field["name"],
                lambda field: field["name"],
                lambda field: not field.get("is_available", True),
            )

