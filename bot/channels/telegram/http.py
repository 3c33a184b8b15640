"""python-telegram-bot's HTTP transport on aiohttp (the library's own default is httpx).

PTB builds every Bot API call (parameters, files, error mapping, retries after 429) and hands this class
only the finished request: method, URL, form fields or multipart parts. aiohttp's client, which the rest
of the bot already uses, does the same work with a fraction of httpx's CPU per call, and a busy outbox
makes thousands of calls. Timeouts become PTB's TimedOut and connection failures its NetworkError, as
with PTB's HTTPXRequest, so everything above this class behaves the same.
"""
from __future__ import annotations

import ssl
from typing import Any

import aiohttp
import certifi
import yarl
from aiohttp.helpers import get_env_proxy_for_url
from telegram._utils.defaultvalue import DefaultValue  # what PTB's own HTTPXRequest checks timeouts against
from telegram.error import NetworkError, TimedOut
from telegram.request import BaseRequest, RequestData


class AiohttpRequest(BaseRequest):
    """A PTB request backend with one aiohttp session (a pool of `connection_pool_size` connections)."""

    def __init__(self, connection_pool_size: int = 8, read_timeout: float | None = 5.0,
                 connect_timeout: float = 5.0, write_timeout: float = 5.0, media_write_timeout: float = 20.0) -> None:
        self._pool_size = connection_pool_size
        self._read_timeout = read_timeout
        self._connect_timeout = connect_timeout
        self._write_timeout = write_timeout
        self._media_write_timeout = media_write_timeout
        self._session: aiohttp.ClientSession | None = None
        self._proxies: dict[str, tuple[Any, Any]] = {}  # host -> (proxy URL, its auth) from the environment

    @property
    def read_timeout(self) -> float | None:
        """The default read timeout (PTB adds it to getUpdates' long-poll timeout)."""
        return self._read_timeout

    async def initialize(self) -> None:
        """Open the session (again, after a shutdown)."""
        if self._session is None or self._session.closed:
            # certifi's CA bundle, as PTB's httpx transport uses: a machine without system CA certificates works
            tls = ssl.create_default_context(cafile=certifi.where())
            connector = aiohttp.TCPConnector(limit=self._pool_size, ssl=tls)
            # HTTPS_PROXY / NO_PROXY are honoured, as by PTB's default transport (api.telegram.org may only be
            # reachable through a proxy): looked up once per host (see _proxy), not with trust_env, which makes
            # aiohttp read ~/.netrc on a thread for every call
            self._session = aiohttp.ClientSession(connector=connector, headers={"User-Agent": self.USER_AGENT})

    def _proxy(self, url: str) -> tuple[Any, Any]:
        """The proxy the environment names for this URL's host (HTTPS_PROXY, NO_PROXY …), read once per host."""
        parsed = yarl.URL(url)
        key = f"{parsed.scheme}://{parsed.host}"
        if key not in self._proxies:
            try:
                self._proxies[key] = get_env_proxy_for_url(parsed)
            except LookupError:
                self._proxies[key] = (None, None)
        return self._proxies[key]

    async def shutdown(self) -> None:
        """Close the session and its connections."""
        if self._session is not None and not self._session.closed:
            await self._session.close()
        self._session = None

    async def do_request(self, url: str, method: str, request_data: RequestData | None = None,
                         read_timeout: Any = BaseRequest.DEFAULT_NONE, write_timeout: Any = BaseRequest.DEFAULT_NONE,
                         connect_timeout: Any = BaseRequest.DEFAULT_NONE,
                         pool_timeout: Any = BaseRequest.DEFAULT_NONE) -> tuple[int, bytes]:
        """Make one call; (HTTP status, body)."""
        if self._session is None or self._session.closed:
            raise RuntimeError("This AiohttpRequest is not initialized!")
        files = request_data.multipart_data if request_data and request_data.contains_files else None
        fields = request_data.json_parameters if request_data else None
        read = self._read_timeout if isinstance(read_timeout, DefaultValue) else read_timeout
        connect = self._connect_timeout if isinstance(connect_timeout, DefaultValue) else connect_timeout
        write = write_timeout
        if isinstance(write_timeout, DefaultValue):
            write = self._media_write_timeout if files else self._write_timeout
        # aiohttp has no separate write timeout: the whole call may take connect + write + read
        parts = [x for x in (connect, write, read) if x is not None]
        total = sum(parts) if read is not None else None
        timeout = aiohttp.ClientTimeout(total=total, sock_connect=connect, sock_read=read)
        data: Any = fields
        if files:
            form = aiohttp.FormData()
            for name, value in (fields or {}).items():
                form.add_field(name, value)
            for name, (filename, content, mimetype) in files.items():
                form.add_field(name, content, filename=filename, content_type=mimetype)
            data = form
        proxy, proxy_auth = self._proxy(url)
        try:
            async with self._session.request(method, url, data=data, timeout=timeout, proxy=proxy,
                                             proxy_auth=proxy_auth) as res:
                return res.status, await res.read()
        except TimeoutError as err:
            raise TimedOut from err
        except aiohttp.ClientError as err:
            raise NetworkError(f"aiohttp.{type(err).__name__}: {err}") from err
