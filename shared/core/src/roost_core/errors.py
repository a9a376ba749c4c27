"""Roost's exception hierarchy. Every message names the offending value or id."""

from __future__ import annotations


class RoostError(Exception):
    """Raised for any Roost failure; the root of every Roost exception."""

    code = "roost_error"
    http_status = 500


class InvalidDefinitionError(RoostError, ValueError):
    """Raised when a workflow definition is malformed: a cycle, an unknown or foreign
    parent, a duplicate task name, or a name that cannot be used on the broker."""

    code = "invalid_definition"
    http_status = 422


class InvalidInputError(RoostError, ValueError):
    """Raised when a run's input does not match the workflow's input model."""

    code = "invalid_input"
    http_status = 422


class BadRequestError(RoostError, ValueError):
    """Raised when a request is malformed (not JSON, wrong shape, bad parameter)."""

    code = "bad_request"
    http_status = 400


class NotFoundError(RoostError, LookupError):
    """Raised when a run, task or workflow does not exist."""

    code = "not_found"
    http_status = 404


class UnknownWorkflowError(NotFoundError):
    """Raised when a workflow name has never been registered."""

    code = "unknown_workflow"


class UnknownRunError(NotFoundError):
    """Raised when a run id does not exist."""

    code = "unknown_run"


class AuthenticationError(RoostError):
    """Raised when a request carries no token, or a token that is unknown or revoked."""

    code = "unauthenticated"
    http_status = 401


class ConflictError(RoostError):
    """Raised when a request conflicts with existing state."""

    code = "conflict"
    http_status = 409


class DatabaseUnavailableError(RoostError):
    """Raised when PostgreSQL cannot be reached or drops the connection."""

    code = "database_unavailable"
    http_status = 503


class BrokerUnavailableError(RoostError):
    """Raised when RabbitMQ cannot be reached or drops the connection."""

    code = "broker_unavailable"
    http_status = 503
