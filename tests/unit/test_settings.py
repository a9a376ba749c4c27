"""Client settings: the TLS strategy and the api URL must agree."""

from __future__ import annotations

import pytest

import roost
from roost._settings import ClientSettings
from roost_core.settings import CoreSettings


def test_plain_http_with_tls_strategy_is_a_clear_error() -> None:
    with pytest.raises(roost.ConfigurationError, match="ROOST_TLS_STRATEGY=tls"):
        ClientSettings(api_url="http://api:7077", tls_strategy="tls").base_url()


def test_https_with_no_tls_strategy_none_is_a_clear_error() -> None:
    with pytest.raises(roost.ConfigurationError, match="ROOST_TLS_STRATEGY=none"):
        ClientSettings(api_url="https://api:7077", tls_strategy="none").base_url()


def test_a_bare_host_follows_the_strategy(monkeypatch: pytest.MonkeyPatch) -> None:
    # The default must not come from the environment (e2e fixtures set it for the stack).
    monkeypatch.delenv("ROOST_TLS_STRATEGY", raising=False)
    assert ClientSettings(api_url="api:7077", tls_strategy="none").base_url() == "http://api:7077"
    assert ClientSettings(api_url="api:7077", tls_strategy="tls").base_url() == "https://api:7077"
    assert ClientSettings(api_url="api:7077").base_url() == "https://api:7077"  # verify by default


def test_settings_come_from_roost_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ROOST_API_URL", "http://example:1234")
    monkeypatch.setenv("ROOST_TOKEN", "rst_abc")
    monkeypatch.setenv("ROOST_NAMESPACE", "team-a")
    s = ClientSettings()
    assert (s.api_url, s.token, s.namespace) == ("http://example:1234", "rst_abc", "team-a")


def test_a_namespace_unusable_on_the_broker_is_rejected_naming_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ROOST_NAMESPACE", "bad name!")
    with pytest.raises(ValueError, match="bad name!"):
        CoreSettings()
