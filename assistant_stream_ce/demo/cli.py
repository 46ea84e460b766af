"""``assistant-stream-ce demo``: serve the demo app with hypercorn or uvicorn, on asyncio or trio."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import socket
from typing import Any

import anyio

from ._formats import FORMATS
from .app import create_app
from .live import DEFAULT_MODEL, LiveAgent

__all__ = ["add_arguments", "run"]

logger = logging.getLogger("assistant_stream_ce.demo")

SERVERS = ("hypercorn", "uvicorn")
BACKENDS = ("asyncio", "trio")

#: Seconds the server waits for open streams when it is told to stop; then they are cancelled.
GRACEFUL_TIMEOUT = 2.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of the ``demo`` subcommand."""
    parser.add_argument("--server", choices=SERVERS, default="hypercorn", help="ASGI server (default: hypercorn)")
    parser.add_argument("--backend", choices=BACKENDS, default="asyncio", help="async backend (default: asyncio)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8000, help="port to listen on; 0 picks a free one (default: 8000)")
    parser.add_argument(
        "--format",
        choices=[fmt.id for fmt in FORMATS],
        default="data-stream",
        help="wire format the page starts with (default: data-stream)",
    )
    parser.add_argument(
        "--pace", type=float, default=1.0, help="scale the agent's delays: 0.5 runs twice as fast (default: 1)"
    )
    parser.add_argument(
        "--agent",
        choices=("scripted", "openai"),
        default="openai" if os.environ.get("OPENAI_BASE_URL") else "scripted",
        help="who answers: the scripted agent, or an OpenAI-compatible model at OPENAI_BASE_URL with "
        "OPENAI_API_KEY (needs the openai extra; default: openai when OPENAI_BASE_URL is set, else scripted)",
    )
    parser.add_argument(
        "--model",
        default=os.environ.get("OPENAI_MODEL", DEFAULT_MODEL),
        help=f"the model of --agent openai (default: $OPENAI_MODEL or {DEFAULT_MODEL})",
    )


def check(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Reject combinations that cannot work, with a message that says what to do instead."""
    if args.server == "uvicorn" and args.backend == "trio":
        parser.error("uvicorn runs on asyncio only; use --server hypercorn for --backend trio")
    if not 0 <= args.port <= 65535:
        parser.error(f"--port must be between 0 and 65535, not {args.port}")
    if not args.pace > 0:
        parser.error(f"--pace must be a positive number, not {args.pace}")


def _listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        return socket.create_server((host, port), family=family)
    except OSError as exc:
        raise SystemExit(f"cannot listen on {host} port {port}: {exc.strerror or exc}; try --port 0") from None


def _url(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"


async def _until_signal() -> None:
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for _ in signals:
            return


async def _serve_hypercorn(app: Any, sock: socket.socket, backend: str) -> None:
    from hypercorn.config import Config

    config = Config()
    config.bind = [f"fd://{sock.detach()}"]
    config.graceful_timeout = GRACEFUL_TIMEOUT
    config.errorlog = logging.getLogger("hypercorn.error")  # through our logging setup, not a second handler
    if backend == "trio":
        from hypercorn.trio import serve as serve_trio

        await serve_trio(app, config, shutdown_trigger=_until_signal)
    else:
        from hypercorn.asyncio import serve as serve_asyncio

        await serve_asyncio(app, config, shutdown_trigger=_until_signal)


async def _serve_uvicorn(app: Any, sock: socket.socket) -> None:
    import uvicorn

    config = uvicorn.Config(app, lifespan="off", access_log=False, timeout_graceful_shutdown=int(GRACEFUL_TIMEOUT))
    await uvicorn.Server(config).serve(sockets=[sock])


def _live_agent(model: str, pace: float) -> LiveAgent:
    try:
        from openai import AsyncOpenAI
    except ImportError:
        raise SystemExit("--agent openai needs the openai package: pip install '.[demo,openai]'") from None
    # A local OpenAI-compatible server may need no key; the client insists on one.
    api_key = os.environ.get("OPENAI_API_KEY") or ("unused" if os.environ.get("OPENAI_BASE_URL") else None)
    return LiveAgent(AsyncOpenAI(api_key=api_key), model, pace)


def run(args: argparse.Namespace) -> None:
    """Start the server, print the page's URL, and serve until Ctrl+C (SIGINT) or SIGTERM."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        if args.server == "uvicorn":
            import uvicorn  # noqa: F401
        else:
            import hypercorn  # noqa: F401
        if args.backend == "trio":
            import trio  # noqa: F401
    except ImportError as exc:
        raise SystemExit(
            f"the demo needs {exc.name}: install the demo extra, pip install '.[demo]' in a clone of the project"
        ) from None
    live = _live_agent(args.model, args.pace) if args.agent == "openai" else None
    app = create_app(default_format=args.format, server=args.server, backend=args.backend, pace=args.pace, live=live)
    sock = _listen(args.host, args.port)
    print(
        f"assistant-stream-ce demo: {_url(sock)}  ({args.server} on {args.backend}, format {args.format}, "
        f"{'model ' + args.model if live else 'scripted agent'}; Ctrl+C stops it)",
        flush=True,
    )
    try:
        if args.server == "uvicorn":
            anyio.run(_serve_uvicorn, app, sock, backend="asyncio")
        else:
            anyio.run(_serve_hypercorn, app, sock, args.backend, backend=args.backend)
    except KeyboardInterrupt:
        pass  # uvicorn shuts down on Ctrl+C, then raises it again
