// Two rounds of a tool call that waits for approval, run by the real clients
// against a live server (tests/http_servers/approval_app.py):
//
//   node approval.mjs <base url> <approve|deny>
//
// prints one JSON object: for each client, what it showed after round 1, the
// request body it sent with the decision, and what it showed after round 2,
// plus every console.warn / console.error the clients wrote ("warnings").
//
//   chat: the AI SDK's Chat + DefaultChatTransport (what useChat runs): sendMessage,
//     addToolApprovalResponse, then sendMessage() sends the decision;
//   readUIMessageStream: `ai`'s stream reader on round 1, and on round 2 (continuing
//     round 1's message) for the body Chat sent;
//   dataStream / transport: assistant-stream's decoders + AssistantMessageAccumulator
//     (strict); round 2's request carries the part's approval with `approved` set;
//   agUi: @ag-ui/client's HttpAgent: runAgent, then runAgent({resume}).
//
//   node approval.mjs <base url> <approve|deny> langgraph
//
// runs the same clients against a LangGraph graph that interrupts to ask
// (tests/http_servers/langgraph_app.py): round 1 ends at the interrupt (a
// `data-interrupt` part, a data frame, the AG-UI interrupt outcome); round 2
// sends the answer (`body: {resume}` with Chat, `resume` in the data stream
// request, runAgent({resume})).
const [base, decision, mode] = process.argv.slice(2);
const approved = decision === "approve";
const reason = approved ? undefined : "Too expensive";

const warnings = [];
for (const level of ["warn", "error"]) {
  console[level] = (...args) => void warnings.push(`console.${level}: ${args.map((a) => (a instanceof Error ? a.message : typeof a === "string" ? a : JSON.stringify(a))).join(" ")}`);
}

const post = (path, body) =>
  fetch(`${base}${path}`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });

// ---- AI SDK ---------------------------------------------------------------------

class PlainChatState {
  status = "ready";
  error = undefined;
  messages = [];
  pushMessage = (m) => void (this.messages = this.messages.concat(m));
  popMessage = () => void (this.messages = this.messages.slice(0, -1));
  replaceMessage = (i, m) => void (this.messages = [...this.messages.slice(0, i), m, ...this.messages.slice(i + 1)]);
  snapshot = (value) => structuredClone(value);
}

const toolParts = (message) =>
  (message?.parts ?? [])
    .filter((p) => p.type.startsWith("tool-") || p.type === "dynamic-tool")
    .map((p) => ({ type: p.type, toolCallId: p.toolCallId, state: p.state, input: p.input ?? null, output: p.output ?? null, approval: p.approval ?? null }));

// The AI SDK's Chat on `${base}/chat` with the given id, and the request bodies it sends.
const newChat = async (id) => {
  const { AbstractChat, DefaultChatTransport } = await import("ai");
  class Chat extends AbstractChat {
    constructor(init) {
      super({ ...init, state: new PlainChatState() });
    }
  }
  const bodies = [];
  const transport = new DefaultChatTransport({
    api: `${base}/chat`,
    fetch: (url, init) => {
      bodies.push(JSON.parse(init.body));
      return fetch(url, init);
    },
  });
  return { client: new Chat({ id, transport }), bodies };
};

const chat = async () => {
  const { client, bodies } = await newChat("chat-1");
  await client.sendMessage({ text: "Book a train to Paris" });
  const round1 = { messages: client.messages.map((m) => ({ id: m.id, role: m.role })), tools: toolParts(client.messages.at(-1)), status: client.status };
  const pending = client.messages.at(-1).parts.find((p) => p.state === "approval-requested");
  await client.addToolApprovalResponse({ id: pending.approval.id, approved, ...(reason && { reason }) });
  await client.sendMessage();
  const round2 = {
    messages: client.messages.map((m) => ({ id: m.id, role: m.role })),
    tools: toolParts(client.messages.at(-1)),
    text: client.messages.at(-1).parts.filter((p) => p.type === "text").map((p) => p.text).join(""),
    status: client.status,
    error: client.error?.message ?? null,
  };
  return { round1, request: bodies[1], round2 };
};

const readStream = async (request) => {
  const { readUIMessageStream, parseJsonEventStream, uiMessageChunkSchema } = await import("ai");
  const read = async (body, message) => {
    const response = await post("/chat", body);
    const chunks = parseJsonEventStream({ stream: response.body, schema: uiMessageChunkSchema }).pipeThrough(
      new TransformStream({
        transform(part, controller) {
          if (!part.success) throw part.error;
          controller.enqueue(part.value);
        },
      }),
    );
    let last = null;
    for await (const m of readUIMessageStream({ stream: chunks, message, terminateOnError: true })) last = m;
    return last;
  };
  const first = await read({ id: "chat-2", messages: [request.messages[0]], trigger: "submit-message" });
  const second = await read(request, structuredClone(request.messages.at(-1)));
  return { round1: toolParts(first), round2: { id: second.id, tools: toolParts(second) } };
};

// ---- assistant-stream -----------------------------------------------------------

const accumulate = async (decoderName, response) => {
  const { AssistantMessageAccumulator, [decoderName]: Decoder } = await import("assistant-stream");
  let message = null;
  const stream = response.body.pipeThrough(new Decoder()).pipeThrough(new AssistantMessageAccumulator());
  for await (const m of stream) message = m;
  return message;
};

const auiTools = (message) =>
  message.parts
    .filter((p) => p.type === "tool-call")
    .map((p) => ({ toolCallId: p.toolCallId, toolName: p.toolName, args: p.args, approval: p.approval ?? null, result: p.result ?? null, isError: p.isError ?? false }));

const decided = (part) => ({ ...part.approval, approved, ...(reason && { reason }) });

const dataStream = async () => {
  const user = { role: "user", content: [{ type: "text", text: "Book a train to Paris" }] };
  const first = await accumulate("DataStreamDecoder", await post("/data-stream", { messages: [user] }));
  const pending = first.parts.find((p) => p.type === "tool-call" && p.approval);
  // The model messages assistant-ui sends, with the decided approval kept on the call.
  const assistant = {
    role: "assistant",
    content: [{ type: "tool-call", toolCallId: pending.toolCallId, toolName: pending.toolName, input: pending.args, approval: decided(pending) }],
  };
  const request = { messages: [user, assistant] };
  const second = await accumulate("DataStreamDecoder", await post("/data-stream", request));
  return { round1: { tools: auiTools(first), status: first.status }, request, round2: { tools: auiTools(second), status: second.status } };
};

const transport = async () => {
  const add = { type: "add-message", message: { role: "user", parts: [{ type: "text", text: "Book a train to Paris" }] }, parentId: null, sourceId: null };
  const first = await accumulate("AssistantTransportDecoder", await post("/transport", { commands: [add], state: null }));
  const pending = first.parts.find((p) => p.type === "tool-call" && p.approval);
  const command = { type: "add-tool-approval", toolCallId: pending.toolCallId, toolName: pending.toolName, args: pending.args, approval: decided(pending) };
  const request = { commands: [command], state: null };
  const second = await accumulate("AssistantTransportDecoder", await post("/transport", request));
  return { round1: { tools: auiTools(first), status: first.status }, request, round2: { tools: auiTools(second), status: second.status } };
};

// ---- AG-UI --------------------------------------------------------------------------

const agUi = async () => {
  const { HttpAgent } = await import("@ag-ui/client");
  const bodies = [];
  const agent = new HttpAgent({
    url: `${base}/agent`,
    threadId: "thread-1",
    initialMessages: [{ id: "u1", role: "user", content: "Book a train to Paris" }],
    fetch: (url, init) => {
      bodies.push(JSON.parse(init.body));
      return fetch(url, init);
    },
  });
  const outcomes = [];
  const subscriber = { onRunFinishedEvent: ({ event }) => void outcomes.push(event.outcome ?? null) };
  await agent.runAgent({ runId: "run-1" }, subscriber);
  const interrupts = outcomes[0]?.interrupts ?? [];
  const resume = interrupts.map((i) => ({ interruptId: i.id, status: "resolved", payload: { approved, ...(reason && { reason }) } }));
  await agent.runAgent({ runId: "run-2", resume }, subscriber);
  return { outcomes, request: bodies[1], messages: agent.messages };
};

// ---- LangGraph interrupts ----------------------------------------------------------

const answer = (interruptId) => [{ interruptId, status: "resolved", payload: { approved } }];
const thread = `thread-${decision}-${Date.now()}`;

const graphChat = async () => {
  const { client, bodies } = await newChat(thread);
  const shown = () => ({
    messages: client.messages.map((m) => ({ id: m.id, role: m.role })),
    parts: client.messages.at(-1).parts.filter((p) => p.type !== "step-start").map((p) => ({ type: p.type, text: p.text ?? null, data: p.data ?? null })),
    status: client.status,
    error: client.error?.message ?? null,
  });
  await client.sendMessage({ text: "Book a train to Paris" });
  const round1 = shown();
  const interrupt = client.messages.at(-1).parts.find((p) => p.type === "data-interrupt").data;
  await client.sendMessage(undefined, { body: { resume: answer(interrupt.id) } });
  return { round1, request: bodies[1], round2: shown() };
};

const graphDataStream = async () => {
  const user = { role: "user", content: [{ type: "text", text: "Book a train to Paris" }] };
  const shown = (m) => ({ text: m.parts.filter((p) => p.type === "text").map((p) => p.text).join(""), data: m.metadata.unstable_data, status: m.status });
  const first = await accumulate("DataStreamDecoder", await post("/data-stream", { threadId: thread, messages: [user] }));
  const interrupt = first.metadata.unstable_data.find((d) => d.kind === "interrupt");
  const request = { threadId: thread, messages: [user], resume: answer(interrupt.id) };
  const second = await accumulate("DataStreamDecoder", await post("/data-stream", request));
  return { round1: shown(first), request, round2: shown(second) };
};

const graphAgUi = async () => {
  const { HttpAgent } = await import("@ag-ui/client");
  const agent = new HttpAgent({ url: `${base}/agent`, threadId: thread, initialMessages: [{ id: "u1", role: "user", content: "Book a train to Paris" }] });
  const outcomes = [];
  const subscriber = { onRunFinishedEvent: ({ event }) => void outcomes.push(event.outcome ?? null) };
  await agent.runAgent({ runId: "run-1" }, subscriber);
  const pending = agent.pendingInterrupts;
  await agent.runAgent({ runId: "run-2", resume: pending.flatMap((i) => answer(i.id)) }, subscriber);
  const texts = agent.messages.filter((m) => m.role === "assistant").map((m) => m.content);
  return { outcomes, pending, texts, state: agent.state, pendingAfter: agent.pendingInterrupts };
};

const result = {};
const clients = mode === "langgraph" ? { chat: graphChat, dataStream: graphDataStream, agUi: graphAgUi } : { chat, dataStream, transport, agUi };
for (const [name, run] of Object.entries(clients)) {
  try {
    result[name] = await run();
  } catch (error) {
    result[name] = { error: `${error?.name}: ${error?.message}` };
  }
}
if (mode !== "langgraph") {
  try {
    result.readUIMessageStream = await readStream(result.chat.request);
  } catch (error) {
    result.readUIMessageStream = { error: `${error?.name}: ${error?.message}` };
  }
}
result.warnings = warnings;
process.stdout.write(JSON.stringify(result));
