"""What the network may do: the launch policy, path rules, and the HTTP guard in front of the UI.

    policy = LaunchPolicy.for_launch(host="0.0.0.0", share=False, model_dirs=["/models"],
                                     allow_remote_code=False, max_upload="200MB", auth="me:secret")
    ws = Workspace(home, policy)          # Workspace.start enforces it for the form and the API
    policy.exposed                        # True: reachable from other machines
    HostGuard, AllowedHosts               # ASGI middleware: Host header and cross-origin checks

The machine's own user at a terminal (`studio train`) is trusted; a browser or script that reaches
the port is not. So everything a network caller sends is checked here or in `Workspace`:
remote code stays off unless the studio was launched with `--allow-remote-code`, uploaded files
are never model folders, and when the studio is exposed (a host other than loopback, or a share
link) model folders must lie under a `--model-dir`. No gradio import: the guard is plain ASGI.
"""

from __future__ import annotations

import errno
import ipaddress
import os
import re
import socket
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from urllib.parse import urlsplit

from studio.errors import UserError
from studio.paths import expand_user

DEFAULT_MAX_UPLOAD = 200 * 1024 ** 2
LOOPBACK_NAMES = {"localhost", "127.0.0.1", "::1"}
WILDCARD_HOSTS = {"0.0.0.0", "::", ""}
AUTH_ENV = "STUDIO_AUTH"  # user:password, for Hugging Face Spaces (a secret) and containers
_UNITS = {"": 1024 ** 2, "b": 1, "k": 1024, "kb": 1024, "m": 1024 ** 2, "mb": 1024 ** 2,
          "g": 1024 ** 3, "gb": 1024 ** 3}


def is_loopback(host: str) -> bool:
    """True for names and addresses that only this machine can reach."""
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_listen(host: str, port: int) -> None:
    """UserError unless the studio can listen on host:port: a name that does not resolve, an
    address of another machine and a port already taken each get their own sentence (Gradio
    would say "Cannot find empty port" for all three, after uvicorn's own error line)."""
    if not 1 <= port <= 65535:  # else a socket OverflowError, with its traceback
        raise UserError("chatcli.bad_port", port=str(port))
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM)[0]
    except (socket.gaierror, UnicodeError):
        raise UserError("security.bad_host", host=host) from None
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds: TIME_WAIT is no conflict
        try:
            probe.bind(address)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                other = port + 1 if port < 65535 else port - 1
                raise UserError("security.port_in_use", port=port, other=other) from None
            raise UserError("security.cannot_listen", host=host, port=port, reason=exc.strerror or str(exc)) from None


def parse_size(text: str | int) -> int:
    """'200MB', '1.5GB', '512kb' or a bare number of megabytes -> bytes."""
    if isinstance(text, int):
        return text
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*", str(text))
    unit = match.group(2).lower() if match else None
    if not match or unit not in _UNITS or float(match.group(1)) <= 0:
        raise UserError("security.bad_size", value=str(text))
    return int(float(match.group(1)) * _UNITS[unit])


def parse_auth(text: str) -> tuple[str, str]:
    """'user:password' -> (user, password); the password may itself contain ':'."""
    user, sep, password = (text or "").partition(":")
    if not sep or not user.strip() or not password:
        raise UserError("security.bad_auth")
    return user.strip(), password


def upload_folders(home: Path) -> list[Path]:
    """Folders that hold files sent over the network: the studio's uploads and Gradio's cache."""
    gradio_cache = os.environ.get("GRADIO_TEMP_DIR") or Path(tempfile.gettempdir()) / "gradio"
    return [Path(home) / "uploads", Path(gradio_cache)]


def is_within(path: str | Path, folder: str | Path) -> bool:
    """Whether `path` lies in `folder`, comparing real paths (symlinks resolved)."""
    real, base = os.path.realpath(path), os.path.realpath(folder)
    return real == base or real.startswith(base.rstrip(os.sep) + os.sep)


@dataclass(frozen=True)
class LaunchPolicy:
    """How the studio was launched, and so what a network caller may ask of it.

    The default is a studio on loopback with remote code off: what tests and `Workspace(home)`
    get. `studio ui` builds one from its flags with `for_launch`.
    """

    host: str = "127.0.0.1"
    share: bool = False
    allow_remote_code: bool = False
    model_dirs: tuple[Path, ...] = ()
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD
    auth: tuple[str, str] | None = field(default=None, repr=False)
    allowed_hosts: tuple[str, ...] = ()
    demo: object | None = None  # studio.demo_mode.DemoLimits when strangers share the studio

    @property
    def exposed(self) -> bool:
        """Reachable from other machines: bound beyond loopback or published through a share link."""
        return self.share or not is_loopback(self.host)

    @classmethod
    def for_launch(cls, host: str = "127.0.0.1", share: bool = False, allow_remote_code: bool = False,
                   model_dirs=(), max_upload: str | int = DEFAULT_MAX_UPLOAD, auth: str | None = None,
                   allowed_hosts=(), demo=None) -> "LaunchPolicy":
        """Validate the launch flags (UserError on a bad one); auth falls back to $STUDIO_AUTH.
        `demo` (studio.demo_mode.demo_limits()) caps the upload size too."""
        folders = []
        for folder in model_dirs or ():
            path = expand_user(folder)
            if not path.is_dir():
                raise UserError("security.model_dir_missing", folder=str(folder))
            folders.append(path.resolve())
        auth_text = auth or os.environ.get(AUTH_ENV)
        policy = cls(host=host, share=share, allow_remote_code=allow_remote_code,
                     model_dirs=tuple(folders), max_upload_bytes=parse_size(max_upload),
                     auth=parse_auth(auth_text) if auth_text else None,
                     allowed_hosts=tuple(h.lower() for h in allowed_hosts or ()), demo=demo)
        if demo is not None:
            policy = replace(policy, max_upload_bytes=min(policy.max_upload_bytes, demo.max_upload_bytes))
        return policy

    def warning(self) -> str | None:
        """A code for the line printed at launch when the studio is exposed without a login."""
        if self.exposed and self.auth is None:
            return "security.exposed_without_auth"
        return None


class AllowedHosts:
    """The names this server answers to: the bound host, loopback names, and any added later.

    IP literals are accepted too when bound to every interface: a DNS rebinding attack needs a
    name, and an address typed by a user on the network is this server.
    """

    def __init__(self, bound_host: str = "127.0.0.1", extra=()):
        self.bound_host = bound_host.lower()
        self.names = {"localhost", "127.0.0.1", "::1", self.bound_host, *(h.lower() for h in extra)}
        if self.bound_host in WILDCARD_HOSTS:
            # Bound to every interface: the machine's own names and a Space's public name are
            # also this server.
            self.names |= {socket.gethostname().lower(), socket.getfqdn().lower()}
            if os.environ.get("SPACE_HOST"):
                self.names.add(os.environ["SPACE_HOST"].lower())
        self.names.discard("")

    def allow(self, name: str) -> None:
        """Accept one more name (e.g. the share link's host, known only after launch)."""
        self.names.add(name.lower())

    def __contains__(self, host_header: str) -> bool:
        name = _hostname(host_header)
        if name in self.names:
            return True
        try:
            address = ipaddress.ip_address(name)
        except ValueError:
            return False
        return self.bound_host in WILDCARD_HOSTS or address.is_loopback


class HostGuard:
    """ASGI middleware: refuse foreign Host headers (DNS rebinding) and cross-site writes (CSRF).

    A page on another site can make the user's browser send requests to the studio: with a
    rebound DNS name (its Host header is then that name) or with a form post (its Origin header
    is the other site). Gradio only withholds CORS headers from such responses; the request itself
    still runs, so an upload or a start would happen. Both are refused here with 403 before any
    route sees them.

        app_kwargs={"middleware": [Middleware(HostGuard, hosts=AllowedHosts("127.0.0.1"))]}
    """

    SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}

    def __init__(self, app, hosts: AllowedHosts):
        self.app = app
        self.hosts = hosts

    async def __call__(self, scope, receive, send):
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        host = headers.get("host", "")
        if host not in self.hosts:
            return await _refuse(scope, send, "Host not allowed.")
        origin = headers.get("origin")
        writes = scope["type"] == "websocket" or scope.get("method", "GET") not in self.SAFE_METHODS
        if writes and origin is not None and not _same_site(origin, host):
            return await _refuse(scope, send, "Cross-origin request refused.")
        return await self.app(scope, receive, send)


def _hostname(host_header: str) -> str:
    parsed = urlsplit("//" + host_header.strip())
    try:
        return (parsed.hostname or "").lower()
    except ValueError:
        return ""


def _site(netloc_or_url: str, default_scheme: str = "http") -> tuple[str, int | None]:
    url = netloc_or_url if "://" in netloc_or_url else f"{default_scheme}://{netloc_or_url}"
    parts = urlsplit(url)
    try:
        port = parts.port or {"http": 80, "https": 443}.get(parts.scheme)
    except ValueError:
        return "", None
    return (parts.hostname or "").lower(), port


def _same_site(origin: str, host_header: str) -> bool:
    """Origin names the same host and port as the Host header ('null' never does)."""
    if origin == "null":
        return False
    origin_host, origin_port = _site(origin)
    scheme = urlsplit(origin).scheme or "http"
    host, port = _site(host_header, scheme)
    return bool(origin_host) and (origin_host, origin_port) == (host, port)


async def _refuse(scope, send, text: str):
    if scope["type"] == "websocket":
        await send({"type": "websocket.close", "code": 1008})
        return
    body = text.encode()
    await send({"type": "http.response.start", "status": 403,
                "headers": [(b"content-type", b"text/plain; charset=utf-8"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
