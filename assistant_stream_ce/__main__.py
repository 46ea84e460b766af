"""The ``assistant-stream-ce`` command (also ``python -m assistant_stream_ce``).

- ``demo``: serve the demo chat page (see ``assistant-stream-ce demo --help``);
- ``sample``: stream a short sample run to the terminal, one chunk a line.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

import anyio

from . import RunController, create_run
from .tool_calls import ToolCall


async def sample(controller: RunController) -> None:
    """A small run: reasoning, text, a tool call, and state that changes."""
    controller.state = {"tasks": [], "status": "thinking"}
    controller.append_reasoning("The user wants the weather; I will look it up.")
    for word in ("Let ", "me ", "check ", "the ", "weather."):
        controller.append_text(word)
        await anyio.sleep(0.05)

    async def get_weather(tool: ToolCall) -> dict[str, object]:
        await anyio.sleep(0.2)
        return {"city": "Paris", "temperature": 21, "conditions": "sunny"}

    controller.state["tasks"].append({"title": "check the weather", "done": False})
    result = await controller.start_tool_call("get_weather", get_weather, args={"city": "Paris"})
    controller.state["tasks"][0]["done"] = True
    controller.state["status"] = "done"
    controller.append_text(f" It is {result.result['conditions']} in Paris, {result.result['temperature']}°C.")


async def _print_sample() -> None:
    async with create_run(sample, state={}) as chunks:
        async for chunk in chunks:
            print(f"{chunk.type:<28} {chunk}", flush=True)


def _parser() -> argparse.ArgumentParser:
    from .demo import cli

    parser = argparse.ArgumentParser(
        prog="assistant-stream-ce", description="Stream AI-assistant responses from Python: the demo and a sample."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="{demo,sample}")
    demo = commands.add_parser("demo", help="serve the demo chat page", description="Serve the demo chat page.")
    cli.add_arguments(demo)
    commands.add_parser("sample", help="print a sample run's chunks", description="Print a sample run's chunks.")
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the ``assistant-stream-ce`` command."""
    from .demo import cli

    parser = _parser()
    args = parser.parse_args(argv)
    if args.command == "demo":
        cli.check(parser, args)
        cli.run(args)
    else:
        anyio.run(_print_sample)


if __name__ == "__main__":
    main()
