"""A fake Anthropic Messages API on 127.0.0.1 for running the real ``claude`` CLI in tests.

The server answers ``POST /v1/messages`` (SSE when ``stream`` is true, JSON otherwise) and
``POST /v1/messages/count_tokens``; anything else gets a JSON 404 and is recorded. Each
*main-loop* request takes the next :class:`Turn` of the script (``fallback`` once the script is
used up). Claude's side calls (haiku/small-model requests, title or quota checks: requests
without tools) are answered by ``side_turn`` and never consume the script. Every request is
recorded in :attr:`FakeMessagesAPI.requests`.

Use the ``fake_api`` fixture::

    def test_x(fake_api):
        fake_api.script(Turn.tool_use("Bash", {"command": "touch x"}), Turn.text("done"))
        subprocess.run([fake_api.claude, "--print", ...], env=fake_api.full_env(), ...)
        assert len(fake_api.main_requests()) == 2

``fake_api.env`` holds the overrides claude needs (to lay over ``os.environ``; variables that
must not leak in from the caller's shell are set to ``""``), ``fake_api.full_env()`` a complete
environment. The fixture skips when ``claude`` is not installed, or fails when
``STARFORGE_REQUIRE_CLAUDE=1``.

What claude 2.1.330 does with the answers (see tests/data/claude/manifest.json): a 400 is tried
6 times (claude drops beta features one by one), so script it as ``fallback``; 429, 529 and a
dropped stream are retried with backoff (0.5 s, 1 s, 2 s...; ``retry-after`` is not honoured)
up to ``CLAUDE_CODE_MAX_RETRIES`` (default 10) times, each retry a new main-loop request; a
stalled stream is waited on for minutes without a retry.
"""

from __future__ import annotations

import itertools
import json
import os
import select
import shutil
import socket
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

#: The Claude Code version .ci/install-claude installs and these tests were checked against.
CLAUDE_VERSION = "2.1.330"

DEFAULT_USAGE: dict[str, int] = {
    "input_tokens": 10,
    "output_tokens": 5,
    "cache_creation_input_tokens": 0,
    "cache_read_input_tokens": 0,
}

#: What makes claude talk to nothing but ANTHROPIC_BASE_URL. Checked with strace on 2.1.330:
#: CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1 alone stops everything else (without it claude
#: sends HEAD /api/hello to the base URL and looks up api.anthropic.com); the other switches
#: are the documented finer ones, kept in case a later version splits them off.
QUIET_ENV: dict[str, str] = {
    "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
    "DISABLE_TELEMETRY": "1",
    "DISABLE_AUTOUPDATER": "1",
    "DISABLE_ERROR_REPORTING": "1",
    "DISABLE_BUG_COMMAND": "1",
    "DISABLE_COST_WARNINGS": "1",
    "DISABLE_NON_ESSENTIAL_MODEL_CALLS": "1",
    "CLAUDE_CODE_DISABLE_FEEDBACK_SURVEY": "1",
    "CLAUDE_CODE_DISABLE_TERMINAL_TITLE": "1",
    "CLAUDE_CODE_ENABLE_TELEMETRY": "0",
    "CLAUDE_CODE_IDE_SKIP_AUTO_INSTALL": "1",
    # Claude Code refuses bypassPermissions as root unless IS_SANDBOX is exactly "1".
    "IS_SANDBOX": "1",
    "NO_PROXY": "127.0.0.1,localhost",
    "no_proxy": "127.0.0.1,localhost",
}

#: Variables of the caller's shell that would change where claude goes or how it authenticates;
#: set to "" (claude treats empty as unset) so they cannot leak into the tests.
BLANKED_ENV = (
    "ANTHROPIC_AUTH_TOKEN", "CLAUDE_CODE_OAUTH_TOKEN", "ANTHROPIC_MODEL",
    "ANTHROPIC_SMALL_FAST_MODEL", "ANTHROPIC_DEFAULT_HAIKU_MODEL",
    "ANTHROPIC_DEFAULT_SONNET_MODEL", "ANTHROPIC_DEFAULT_OPUS_MODEL", "ANTHROPIC_CUSTOM_HEADERS",
    "CLAUDE_CODE_USE_BEDROCK", "CLAUDE_CODE_USE_VERTEX", "CLAUDE_CODE_USE_FOUNDRY",
    "CLAUDE_CODE_SUBAGENT_MODEL", "CLAUDECODE", "CLAUDE_CODE_ENTRYPOINT", "CLAUDE_CODE_SSE_PORT",
    "ANTHROPIC_UNIX_SOCKET", "HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy",
    "ALL_PROXY", "all_proxy",
)

_ids = itertools.count(1)


def _id(prefix: str) -> str:
    return f"{prefix}_{next(_ids):04d}{uuid.uuid4().hex[:20]}"


@dataclass
class Turn:
    """One scripted answer of the fake API.

    ``kind`` is ``"message"`` (``blocks`` streamed or returned), ``"error"`` (HTTP ``status``
    with an Anthropic error body), or ``"stall"`` (the stream opens with ``message_start``, then
    stays silent until :meth:`FakeMessagesAPI.release`; after that ``then`` is streamed, or the
    connection is dropped when ``then`` is None).
    """

    kind: str = "message"
    blocks: list[dict[str, Any]] = field(default_factory=list)
    stop_reason: str = "end_turn"
    usage: dict[str, int] | None = None
    status: int = 200
    error_type: str = ""
    message: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    then: Turn | None = None
    released: threading.Event = field(default_factory=threading.Event, repr=False)

    @classmethod
    def text(cls, text: str, *, usage: dict[str, int] | None = None) -> Turn:
        return cls(blocks=[{"type": "text", "text": text}], usage=usage)

    @classmethod
    def tool_use(cls, name: str, input: dict[str, Any], *, text: str | None = None,
                 id: str | None = None, usage: dict[str, int] | None = None) -> Turn:
        blocks = [{"type": "text", "text": text}] if text else []
        blocks.append({"type": "tool_use", "id": id or _id("toolu"), "name": name, "input": input})
        return cls(blocks=blocks, stop_reason="tool_use", usage=usage)

    @classmethod
    def bash(cls, command: str, description: str = "Run a command", **kwargs: Any) -> Turn:
        return cls.tool_use("Bash", {"command": command, "description": description}, **kwargs)

    @classmethod
    def error(cls, status: int, error_type: str | None = None, message: str | None = None,
              headers: dict[str, str] | None = None) -> Turn:
        types = {400: "invalid_request_error", 401: "authentication_error",
                 403: "permission_error", 404: "not_found_error", 413: "request_too_large",
                 429: "rate_limit_error", 500: "api_error", 529: "overloaded_error"}
        error_type = error_type or types.get(status, "api_error")
        return cls(kind="error", status=status, error_type=error_type,
                   message=message or f"fake {error_type}", headers=dict(headers or {}))

    @classmethod
    def stall(cls, then: Turn | None = None) -> Turn:
        return cls(kind="stall", then=then)


@dataclass
class Request:
    """One request the fake received."""

    method: str
    path: str
    headers: dict[str, str]
    body: Any
    kind: str  # "main", "side", "count_tokens" or "other"
    turn: Turn | None = None
    time: float = field(default_factory=time.time)
    #: set when the client closed the connection while a stalled turn was waiting
    disconnected: threading.Event = field(default_factory=threading.Event, repr=False)

    @property
    def model(self) -> str:
        return self.body.get("model", "") if isinstance(self.body, dict) else ""

    @property
    def system_text(self) -> str:
        system = self.body.get("system", "") if isinstance(self.body, dict) else ""
        if isinstance(system, list):
            return "\n".join(part.get("text", "") for part in system if isinstance(part, dict))
        return str(system)

    def texts(self) -> list[str]:
        """Every text of every message in the request, in order (user and assistant)."""
        found: list[str] = []
        messages = self.body.get("messages", []) if isinstance(self.body, dict) else []
        for message in messages:
            content = message.get("content")
            if isinstance(content, str):
                found.append(content)
                continue
            for block in content or []:
                if block.get("type") == "text":
                    found.append(block.get("text", ""))
                elif block.get("type") == "tool_result":
                    inner = block.get("content")
                    if isinstance(inner, str):
                        found.append(inner)
                    else:
                        found.extend(b.get("text", "") for b in inner or [] if isinstance(b, dict))
        return found

    def tool_results(self) -> list[dict[str, Any]]:
        messages = self.body.get("messages", []) if isinstance(self.body, dict) else []
        return [block for message in messages if isinstance(message.get("content"), list)
                for block in message["content"] if block.get("type") == "tool_result"]


def is_side_call(body: Any) -> bool:
    """Claude's own extra calls (titles, quota checks, haiku helpers) carry no tools; every
    request of the agent loop (main agent and sub-agents) offers tools."""
    return not (isinstance(body, dict) and body.get("tools"))


class FakeMessagesAPI:
    """The server. Thread-safe; start with :meth:`start`, stop with :meth:`stop`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._script: list[Turn] = []
        self.fallback: Turn = Turn.text("fallback: the fake API's script is used up")
        self.side_turn: Turn = Turn.text("ok")
        self.usage: dict[str, int] = dict(DEFAULT_USAGE)
        self.requests: list[Request] = []
        self.classify: Callable[[Any], bool] = is_side_call
        self._stalls: list[Turn] = []
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._own_home: Path | None = None
        self.env: dict[str, str] = {}
        self.home: Path | None = None
        self.claude: str | None = shutil.which("claude")

    # --- the script -----------------------------------------------------------------------
    def script(self, *turns: Turn) -> None:
        """Append turns to the script of main-loop answers."""
        with self._lock:
            self._script.extend(turns)

    def remaining(self) -> int:
        with self._lock:
            return len(self._script)

    def release(self) -> None:
        """Let every stall turn scripted so far go on: those waiting now, and those still in
        the script (which then answer at once). A single one: ``turn.released.set()``."""
        with self._lock:
            stalls, self._stalls = self._stalls, []
            stalls += [turn for turn in [*self._script, self.fallback] if turn.kind == "stall"]
        for turn in stalls:
            turn.released.set()

    def _next_turn(self, kind: str) -> Turn:
        with self._lock:
            if kind == "side":
                return self.side_turn
            turn = self._script.pop(0) if self._script else self.fallback
            if turn.kind == "stall":
                self._stalls.append(turn)
            return turn

    # --- what arrived ---------------------------------------------------------------------
    def main_requests(self) -> list[Request]:
        with self._lock:
            return [r for r in self.requests if r.kind == "main"]

    def side_requests(self) -> list[Request]:
        with self._lock:
            return [r for r in self.requests if r.kind == "side"]

    def other_requests(self) -> list[Request]:
        with self._lock:
            return [r for r in self.requests if r.kind in ("other", "count_tokens")]

    def _record(self, request: Request) -> None:
        with self._lock:
            self.requests.append(request)

    # --- lifecycle ------------------------------------------------------------------------
    @property
    def port(self) -> int:
        assert self._server is not None, "the fake API is not running"
        return self._server.server_address[1]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, home: Path | None = None) -> FakeMessagesAPI:
        handler = type("Handler", (_Handler,), {"api": self})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        if home is None:
            home = self._own_home = Path(tempfile.mkdtemp(prefix="claude-home-"))
        self.home = home
        self.env = claude_env(self.base_url, home)
        return self

    def stop(self) -> None:
        self.release()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._own_home is not None:
            shutil.rmtree(self._own_home, ignore_errors=True)
            self._own_home = None

    def full_env(self, **extra: str) -> dict[str, str]:
        """A complete environment for running claude: this process's, minus the variables
        that would redirect claude, plus :attr:`env`."""
        base = {k: v for k, v in os.environ.items() if k not in BLANKED_ENV}
        return {**base, **{k: v for k, v in self.env.items() if v != ""}, **extra}


def claude_env(base_url: str, home: Path) -> dict[str, str]:
    """The environment overrides that point claude at the fake and at a private HOME."""
    config = home / ".claude"
    for folder in (config, home / ".config", home / ".cache", home / ".local" / "share",
                   home / ".local" / "state", home / "tmp"):
        folder.mkdir(parents=True, exist_ok=True)
    return {
        **{name: "" for name in BLANKED_ENV},
        **QUIET_ENV,
        "ANTHROPIC_BASE_URL": base_url,
        "ANTHROPIC_API_KEY": "test-key",
        "HOME": str(home),
        "CLAUDE_CONFIG_DIR": str(config),
        "XDG_CONFIG_HOME": str(home / ".config"),
        "XDG_CACHE_HOME": str(home / ".cache"),
        "XDG_DATA_HOME": str(home / ".local" / "share"),
        "XDG_STATE_HOME": str(home / ".local" / "state"),
        # claude keeps shell snapshots' cwd files and its messaging socket (cc-socks/) there
        "TMPDIR": str(home / "tmp"),
    }


# --- the wire -----------------------------------------------------------------------------
def _message(turn: Turn, model: str, usage: dict[str, int]) -> dict[str, Any]:
    return {"id": _id("msg"), "type": "message", "role": "assistant", "model": model,
            "content": turn.blocks, "stop_reason": turn.stop_reason, "stop_sequence": None,
            "usage": usage}


class _Handler(BaseHTTPRequestHandler):
    api: FakeMessagesAPI
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    # requests --------------------------------------------------------------------------
    def _read_body(self) -> Any:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if not raw:
            return None
        try:
            return json.loads(raw)
        except ValueError:
            return raw.decode("utf-8", "replace")

    def _recorded(self, kind: str, body: Any) -> Request:
        request = Request(method=self.command, path=self.path,
                          headers={k.lower(): v for k, v in self.headers.items()},
                          body=body, kind=kind)
        self.api._record(request)
        return request

    def do_POST(self) -> None:
        body = self._read_body()
        path = self.path.split("?", 1)[0]
        if path == "/v1/messages":
            kind = "side" if self.api.classify(body) else "main"
            request = self._recorded(kind, body)
            request.turn = turn = self.api._next_turn(kind)
            self._answer(request, turn)
        elif path == "/v1/messages/count_tokens":
            self._recorded("count_tokens", body)
            text = json.dumps(body) if body is not None else ""
            self._json(200, {"input_tokens": max(1, len(text) // 4)})
        else:
            self._recorded("other", body)
            self._not_found()

    def do_GET(self) -> None:
        self._recorded("other", None)
        self._not_found()

    do_PUT = do_PATCH = do_DELETE = do_POST

    def do_HEAD(self) -> None:
        self._recorded("other", None)
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    # answers ---------------------------------------------------------------------------
    def _json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("request-id", _id("req"))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    def _not_found(self) -> None:
        self._json(404, {"type": "error", "error": {
            "type": "not_found_error", "message": f"the fake API has no {self.path}"}})

    def _answer(self, request: Request, turn: Turn) -> None:
        body = request.body if isinstance(request.body, dict) else {}
        model = body.get("model", "claude-fake")
        usage = {**self.api.usage, **(turn.usage or {})}
        if turn.kind == "error":
            self._json(turn.status, {"type": "error", "error": {
                "type": turn.error_type, "message": turn.message}}, turn.headers)
            return
        if not body.get("stream"):
            if turn.kind == "stall":
                self._wait(request, turn)
                if turn.then is None:
                    self.close_connection = True
                    return
                turn = turn.then
            self._json(200, _message(turn, model, usage))
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("request-id", _id("req"))
        self.end_headers()
        start_usage = {**usage, "output_tokens": 1}
        message = {**_message(turn, model, start_usage), "content": [], "stop_reason": None}
        self._event("message_start", {"type": "message_start", "message": message})
        if turn.kind == "stall":
            self._event("ping", {"type": "ping"})
            self._wait(request, turn)
            if turn.then is None or request.disconnected.is_set():
                self.close_connection = True
                return
            turn = turn.then
            usage = {**self.api.usage, **(turn.usage or {})}
        else:
            self._event("ping", {"type": "ping"})
        for index, block in enumerate(turn.blocks):
            self._stream_block(index, block)
        self._event("message_delta", {
            "type": "message_delta",
            "delta": {"stop_reason": turn.stop_reason, "stop_sequence": None},
            "usage": usage})
        self._event("message_stop", {"type": "message_stop"})
        self._chunk(b"")

    def _stream_block(self, index: int, block: dict[str, Any]) -> None:
        if block["type"] == "text":
            self._event("content_block_start", {"type": "content_block_start", "index": index,
                                                "content_block": {"type": "text", "text": ""}})
            text = block["text"]
            for piece in [text[i:i + 40] for i in range(0, len(text), 40)] or [""]:
                self._event("content_block_delta", {
                    "type": "content_block_delta", "index": index,
                    "delta": {"type": "text_delta", "text": piece}})
        elif block["type"] == "tool_use":
            self._event("content_block_start", {
                "type": "content_block_start", "index": index,
                "content_block": {"type": "tool_use", "id": block["id"], "name": block["name"],
                                  "input": {}}})
            payload = json.dumps(block["input"])
            for piece in [payload[i:i + 30] for i in range(0, len(payload), 30)]:
                self._event("content_block_delta", {
                    "type": "content_block_delta", "index": index,
                    "delta": {"type": "input_json_delta", "partial_json": piece}})
        else:
            raise ValueError(f"the fake API cannot stream a {block['type']} block")
        self._event("content_block_stop", {"type": "content_block_stop", "index": index})

    def _event(self, name: str, data: dict[str, Any]) -> None:
        self._chunk(f"event: {name}\ndata: {json.dumps(data)}\n\n".encode())

    def _chunk(self, data: bytes) -> None:
        try:
            self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            self.wfile.flush()
        except OSError:
            self.close_connection = True

    def _wait(self, request: Request, turn: Turn) -> None:
        """Stay silent until released, noticing when the client goes away meanwhile."""
        sock: socket.socket = self.connection
        while not turn.released.wait(0.05):
            readable, _, _ = select.select([sock], [], [], 0)
            if readable:
                try:
                    if sock.recv(1, socket.MSG_PEEK) == b"":
                        request.disconnected.set()
                        return
                except OSError:
                    request.disconnected.set()
                    return


# --- the fixture --------------------------------------------------------------------------
def find_claude() -> str | None:
    return shutil.which("claude")


def require_claude() -> str:
    """The path of ``claude``; skip the test when it is missing (fail under
    ``STARFORGE_REQUIRE_CLAUDE=1``)."""
    path = find_claude()
    if path is None:
        message = ("the claude CLI is not installed (run .ci/install-claude: "
                   f"npm install -g @anthropic-ai/claude-code@{CLAUDE_VERSION})")
        if os.environ.get("STARFORGE_REQUIRE_CLAUDE") == "1":
            pytest.fail(message + "; STARFORGE_REQUIRE_CLAUDE=1 demands it", pytrace=False)
        pytest.skip(message)
    return path


@pytest.fixture
def fake_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeMessagesAPI]:
    """A running fake Messages API, with ``.env``/``.full_env()`` for claude and ``.claude``."""
    claude = require_claude()
    api = FakeMessagesAPI()
    api.claude = claude
    api.start(home=tmp_path_factory.mktemp("claude-home"))
    try:
        yield api
    finally:
        api.stop()
