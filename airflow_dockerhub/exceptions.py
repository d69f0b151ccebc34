"""Errors raised by the provider; none of their messages carries a secret."""

from __future__ import annotations


class DockerHubError(Exception):
    """Docker Hub answered in a way the monitor cannot use."""

    def __init__(self, message: str, status_code: int | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code


class DockerHubNotFoundError(DockerHubError):
    """Docker Hub says the namespace, repository or endpoint does not exist (404 or 410)."""


class DockerHubAuthError(DockerHubError):
    """Docker Hub rejected the credentials of the connection."""


class DockerHubLoginError(DockerHubAuthError):
    """Docker Hub refused to log in with the connection's Docker ID and access token."""


class WebhookDeliveryError(Exception):
    """A webhook was not accepted by its receiver; it stays undelivered and is sent again later."""

    def __init__(self, message: str, status_code: int | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code


class CycleTimeSpent(DockerHubError):
    """Raised instead of starting a request after the cycle's time for reading Docker Hub is over."""
