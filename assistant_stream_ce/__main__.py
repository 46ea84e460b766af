"""``python -m assistant_stream_ce``: stream a short sample run to the terminal."""

from __future__ import annotations

import anyio

from . import RunController, create_run


async def sample(controller: RunController) -> None:
    """A small run: reasoning, text, a tool call, and state that changes."""
    controller.state = {"tasks": [], "status": "thinking"}
    controller.append_reasoning("The user wants the weather; I will look it up.")
    for word in ("Let ", "me ", "check ", "the ", "weather."):
        controller.append_text(word)
        await anyio.sleep(0.05)

    async def get_weather(tool: object) -> dict[str, object]:
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


def main() -> None:
    """Entry point of the ``assistant-stream-ce`` command."""
    anyio.run(_print_sample)


if __name__ == "__main__":
    main()
