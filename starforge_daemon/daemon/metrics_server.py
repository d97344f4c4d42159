"""Serving ``METRICS_ADDRESS``: ``/healthz`` (the heartbeat's verdict as JSON, 200 or 503) and
the Prometheus metrics on every other path, from prometheus_client's threaded WSGI server on a
thread of its own. Loaded only when metrics are on.
"""

from __future__ import annotations

import json
import os
import selectors
import socket
import socketserver
import threading
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any
from wsgiref.simple_server import WSGIRequestHandler, make_server

from prometheus_client import disable_created_metrics, make_wsgi_app
from prometheus_client.exposition import ThreadingWSGIServer

from starforge_daemon.core.events import Publisher
from starforge_daemon.daemon.health import HEARTBEAT_SECONDS, Heartbeat
from starforge_daemon.daemon.observers.metrics import DaemonMetrics
from starforge_daemon.daemon.service import StartError
from starforge_daemon.store.setting_kinds import split_address

if TYPE_CHECKING:
    from starforge_daemon.daemon.engine import Engine
    from starforge_daemon.runtime.api import Runner

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Scrapes are not logged."""


def health_app(heartbeat: Heartbeat, metrics: WsgiApp) -> WsgiApp:
    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("PATH_INFO") != "/healthz":
            return metrics(environ, start_response)
        verdict = heartbeat.verdict()
        body = json.dumps(verdict.to_json()).encode() + b"\n"
        start_response("200 OK" if verdict.healthy else "503 Service Unavailable",
                       [("Content-Type", "application/json"), ("Content-Length", str(len(body))),
                        ("Cache-Control", "no-store")])
        return [body]

    return app


class MetricsServer:
    """The WSGI server on a thread that sleeps until a request or :meth:`close` comes
    (``serve_forever`` would wake twice a second to look for a shutdown)."""

    def __init__(self, address: str, app: WsgiApp) -> None:
        host, port = split_address(address)
        try:
            family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                        flags=socket.AI_PASSIVE)[0][0]

            class Server(ThreadingWSGIServer):
                address_family = family
                timeout = 0  # handle_request: take a waiting connection, never wait for one

                def server_bind(self) -> None:
                    """HTTPServer's without its reverse lookup of the address (a DNS query,
                    and the resolver's libraries loaded) for a SERVER_NAME nobody reads."""
                    socketserver.TCPServer.server_bind(self)
                    self.server_name, self.server_port = host, self.server_address[1]
                    self.setup_environ()

            self._httpd = make_server(host, port, app, Server, handler_class=_QuietHandler)
        except OSError as error:
            raise StartError(f"cannot serve metrics on METRICS_ADDRESS={address}: "
                             f"{error.strerror or error}") from None
        self._wake_read, self._wake_write = os.pipe()
        self._thread = threading.Thread(target=self._serve, name="metrics", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        with selectors.DefaultSelector() as selector:
            selector.register(self._httpd, selectors.EVENT_READ)
            selector.register(self._wake_read, selectors.EVENT_READ)
            while True:
                ready = {key.fileobj for key, _ in selector.select()}
                if self._wake_read in ready:  # close()
                    return
                self._httpd.handle_request()

    def close(self) -> None:
        os.write(self._wake_write, b"x")
        self._thread.join()
        self._httpd.server_close()
        os.close(self._wake_read)
        os.close(self._wake_write)


def serve_metrics(address: str, engine: Engine, runner: Runner,
                  events: Publisher) -> MetricsServer:
    """Count the engine's events, beat with its loop, and serve both on ``address``."""
    disable_created_metrics()  # a _created series beside every counter only doubles a scrape
    metrics = DaemonMetrics()
    heartbeat = Heartbeat(lambda: runner.reachable)

    def heartbeat_and_gauges(_now: float) -> None:
        metrics.sample(heartbeat.beat(), engine.queue.waiting_by_target(), len(engine.ledger))

    server = MetricsServer(address, health_app(heartbeat, make_wsgi_app(metrics.registry)))
    events.subscribe(metrics)
    engine.upkeep.every(HEARTBEAT_SECONDS, heartbeat_and_gauges)
    return server
