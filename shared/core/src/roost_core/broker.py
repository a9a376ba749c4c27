"""RabbitMQ connections (pika), with driver errors turned into Roost errors."""

from __future__ import annotations

from urllib.parse import parse_qs, parse_qsl, urlencode, urlsplit, urlunsplit

import pika
import pika.exceptions

from roost_core.errors import BrokerUnavailableError

PERSISTENT = 2  # AMQP delivery mode of a message RabbitMQ writes to disk


DEFAULT_HEARTBEAT_SECONDS = 30


def parameters(url: str) -> pika.URLParameters:
    """pika parameters for ``url``, with a heartbeat so dead peers are noticed (30 s,
    unless the URL sets one: ``?heartbeat=N``)."""
    params = pika.URLParameters(url)
    if "heartbeat" not in parse_qs(urlsplit(url).query):
        params.heartbeat = DEFAULT_HEARTBEAT_SECONDS
    params.blocked_connection_timeout = 60
    params.connection_attempts = 1
    return params


def connect(url: str) -> pika.BlockingConnection:
    """Open a blocking connection or raise BrokerUnavailableError naming the broker."""
    try:
        return pika.BlockingConnection(parameters(url))
    except pika.exceptions.AMQPError as exc:
        raise BrokerUnavailableError(
            f"RabbitMQ at {redact(url)} is unavailable: {type(exc).__name__} {exc}"
        ) from exc


def redact(url: str) -> str:
    """The broker URL with its password hidden."""
    params = pika.URLParameters(url)
    user = getattr(params.credentials, "username", "?")
    return f"amqp://{user}@{params.host}:{params.port}/{params.virtual_host}"


def with_heartbeat(url: str, seconds: int) -> str:
    """``url`` with its AMQP heartbeat set to ``seconds`` (pika reads it from the query)."""
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query) if k != "heartbeat"]
    query.append(("heartbeat", str(seconds)))
    return urlunsplit(parts._replace(query=urlencode(query)))
