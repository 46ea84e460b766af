// Print the requests that the real clients send: one JSON object per line,
// {"client", "headers", "body"}, read from each client's own fetch call.
//
//   ui-message-stream: the AI SDK's Chat + DefaultChatTransport (what useChat runs), a
//     text and image message after an assistant turn with a finished tool call;
//   ag-ui: @ag-ui/client's HttpAgent.runAgent, with a history holding an image,
//     an assistant tool call and its result, plus tools and context.
import { createInterface } from "node:readline";

const captured = [];
const capture = (client) => async (url, init) => {
  const headers = Object.fromEntries(new Headers(init.headers).entries());
  captured.push({ client, headers, body: JSON.parse(init.body) });
  return new Response("", { status: 500 }); // the request is all that matters here
};

const IMAGE = "data:image/png;base64,iVBORw0KGgo=";

// The state useChat keeps in React, as a plain object (AbstractChat needs one).
class PlainChatState {
  status = "ready";
  error = undefined;
  messages = [];
  constructor(messages) {
    this.messages = messages;
  }
  pushMessage = (m) => void (this.messages = this.messages.concat(m));
  popMessage = () => void (this.messages = this.messages.slice(0, -1));
  replaceMessage = (i, m) => void (this.messages = [...this.messages.slice(0, i), m, ...this.messages.slice(i + 1)]);
  snapshot = (value) => structuredClone(value);
}

const aiSdk = async () => {
  const { AbstractChat, DefaultChatTransport } = await import("ai");
  class Chat extends AbstractChat {
    constructor({ messages, ...init }) {
      super({ ...init, state: new PlainChatState(messages) });
    }
  }
  const chat = new Chat({
    id: "chat-1",
    messages: [
      { id: "u1", role: "user", parts: [{ type: "text", text: "Weather in Lisbon?" }] },
      {
        id: "a1",
        role: "assistant",
        parts: [
          { type: "step-start" },
          { type: "reasoning", text: "Use the tool.", state: "done" },
          {
            type: "tool-get_weather",
            toolCallId: "call-1",
            state: "output-available",
            input: { city: "Lisbon" },
            output: { celsius: 21 },
          },
          {
            type: "tool-get_time",
            toolCallId: "call-2",
            state: "output-error",
            input: { zone: "WET" },
            errorText: "clock broke",
          },
          { type: "text", text: "It is 21 C.", state: "done" },
        ],
      },
    ],
    transport: new DefaultChatTransport({ api: "http://127.0.0.1/api/chat", fetch: capture("ui-message-stream") }),
  });
  await chat.sendMessage({
    text: "And this picture?",
    files: [{ type: "file", mediaType: "image/png", filename: "p.png", url: IMAGE }],
  });
};

const agUi = async () => {
  const { HttpAgent } = await import("@ag-ui/client");
  const agent = new HttpAgent({
    url: "http://127.0.0.1/agent",
    threadId: "thread-1",
    initialState: { city: "Lisbon" },
    initialMessages: [
      { id: "s1", role: "system", content: "Be brief." },
      {
        id: "u1",
        role: "user",
        content: [
          { type: "text", text: "Weather here?" },
          { type: "image", source: { type: "data", value: "iVBORw0KGgo=", mimeType: "image/png" } },
        ],
      },
      {
        id: "a1",
        role: "assistant",
        content: "Checking.",
        toolCalls: [{ id: "call-1", type: "function", function: { name: "get_weather", arguments: '{"city":"Lisbon"}' } }],
      },
      { id: "t1", role: "tool", toolCallId: "call-1", content: '{"celsius":21}' },
      { id: "u2", role: "user", content: "Thanks, and tomorrow?" },
    ],
    fetch: capture("ag-ui"),
  });
  await agent
    .runAgent({
      runId: "run-1",
      tools: [{ name: "get_weather", description: "Weather by city", parameters: { type: "object" } }],
      context: [{ description: "units", value: "metric" }],
    })
    .catch(() => undefined);
};

const origError = console.error;
console.error = () => undefined; // the failed fetch is expected
await aiSdk();
await agUi();
console.error = origError;
for (const request of captured) process.stdout.write(`${JSON.stringify(request)}\n`);
