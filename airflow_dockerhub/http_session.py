"""The HTTP session both hooks talk through: pooled, retried, and verifying TLS as the connection says."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import requests
from requests.adapters import HTTPAdapter

from airflow_dockerhub.version import USER_AGENT

if TYPE_CHECKING:
    from urllib3.util.retry import Retry


class ConnectionSession(requests.Session):
    """
    A session whose own ``verify`` setting wins over ``REQUESTS_CA_BUNDLE`` and ``CURL_CA_BUNDLE``.

    requests lets those environment variables replace a session's ``verify`` whenever a request does
    not pass one itself, so a connection set to ``verify: false`` or to a CA bundle of its own would
    quietly verify against the environment's bundle instead. Left at the default (``True``), the
    environment's bundle is still honoured, as corporate CAs need.
    """

    def merge_environment_settings(
        self, url: str | bytes | None, proxies: Any, stream: Any, verify: Any, cert: Any
    ) -> dict[str, Any]:
        """Keep the session's own ``verify``, unless it is the default, over the environment's CA bundle."""
        settings = super().merge_environment_settings(url, proxies, stream, verify, cert)
        if verify is None and self.verify is not True:
            settings["verify"] = self.verify
        return settings


def connection_session(
    verify: bool | str, retry: Retry, pool_maxsize: int = 10, headers: dict[str, str] | None = None
) -> ConnectionSession:
    """
    Make a session for one connection.

    :param verify: ``True``, ``False`` or the path of a CA bundle, as :func:`airflow_dockerhub.http_settings.parse_verify` reads it.
    :param retry: the retry policy of every request.
    :param pool_maxsize: connections kept open per host, as many as requests sent at once.
    :param headers: headers sent with every request besides the ``User-Agent``.
    """
    session = ConnectionSession()
    session.headers.update({"User-Agent": USER_AGENT, **(headers or {})})
    adapter = HTTPAdapter(pool_connections=1, pool_maxsize=pool_maxsize, max_retries=retry)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    session.verify = verify
    return session
