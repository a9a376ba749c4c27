"""The api serves HTTPS when given a certificate; clients verify it, and a client and
server that disagree about TLS get an error that says so."""

from __future__ import annotations

import ssl
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

import roost
from harness import Stack, free_port


@pytest.fixture(scope="module")
def tls_api(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """A second api process on the session's database, serving HTTPS."""
    d = tmp_path_factory.mktemp("tls")
    cert, key = d / "cert.pem", d / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )
    port = free_port()
    proc = stack.spawn(
        "api-tls",
        "api",
        extra_env={
            "ROOST_API_PORT": str(port),
            "ROOST_TLS_CERT": str(cert),
            "ROOST_TLS_KEY": str(key),
        },
    )
    url = f"https://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if (
                httpx.get(
                    f"{url}/health", verify=ssl.create_default_context(cafile=str(cert)), timeout=2
                ).status_code
                == 200
            ):
                break
        except httpx.HTTPError:
            time.sleep(0.1)
    else:
        raise RuntimeError(f"TLS api did not start:\n{proc.tail()}")
    yield url, cert
    proc.stop()


def test_a_client_that_trusts_the_certificate_talks_https(
    stack: Stack, tls_api: tuple[str, Path]
) -> None:
    url, cert = tls_api
    client = roost.Roost(api_url=url, token=stack.token, tls_strategy="tls", tls_root_ca=str(cert))
    runs, _ = client.runs.list(limit=1)
    assert isinstance(runs, list)


def test_certificates_are_verified_by_default(stack: Stack, tls_api: tuple[str, Path]) -> None:
    url, _ = tls_api
    client = roost.Roost(api_url=url, token=stack.token, tls_strategy="tls")  # no root CA given
    with pytest.raises(roost.ApiUnavailableError, match="TLS|certificate"):
        client.runs.list(limit=1)


def test_plain_http_to_an_https_api_says_it_may_need_tls(
    stack: Stack, tls_api: tuple[str, Path]
) -> None:
    url, _ = tls_api
    client = roost.Roost(
        api_url=url.replace("https://", "http://"), token=stack.token, tls_strategy="none"
    )
    with pytest.raises(roost.ApiUnavailableError, match="HTTPS|TLS"):
        client.runs.list(limit=1)


def test_https_to_a_plain_http_api_says_it_serves_plain_http(stack: Stack) -> None:
    client = roost.Roost(
        api_url=stack.api_url.replace("http://", "https://"), token=stack.token, tls_strategy="tls"
    )
    with pytest.raises(roost.ApiUnavailableError, match="plain HTTP"):
        client.runs.list(limit=1)
