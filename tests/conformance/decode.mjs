// Decode a batch of response bodies the way the browser clients do, and print
// what each client ends up showing, normalized to one JSON shape.
//
// stdin: one JSON object per line: {"format": ..., "chunks": [base64, ...], "clientState": ...}
//   (chunks are the body's pieces as they arrive, so split points are exercised;
//   clientState, optional, is the state the client holds before the run: AG-UI's agent
//   state, the state assistant-ui seeds its message accumulator with; for the format
//   "ui-message-stream-continuing", the chat's messages, the last of which the body continues)
// stdout: one JSON object per input line, in order:
//   {"message": {...} | null, "features": {...} | null, "warnings": [...], "error": str | null}
// "warnings" holds every console.warn / console.error the clients wrote while
// decoding that body; "error" is what a client threw (the browser shows a failed run).
import { createInterface } from "node:readline";

// ---- console capture: every warning a client prints is a finding ------------

const orphanWarnings = []; // printed between bodies: reported with the next one
let sink = null;
for (const level of ["warn", "error"]) {
  console[level] = (...args) => {
    const text = args.map((a) => (a instanceof Error ? `${a.name}: ${a.message}` : typeof a === "string" ? a : JSON.stringify(a))).join(" ");
    (sink ?? orphanWarnings).push(`console.${level}: ${text}`);
  };
}
process.on("unhandledRejection", (reason) => {
  (sink ?? orphanWarnings).push(`unhandled rejection: ${reason?.name ?? "Error"}: ${reason?.message ?? String(reason)}`);
});

const bodyStream = (chunks) => {
  let i = 0;
  return new ReadableStream({
    pull(controller) {
      if (i < chunks.length) controller.enqueue(chunks[i++]);
      else controller.close();
    },
  });
};

const concat = (chunks) => Buffer.concat(chunks.map((c) => Buffer.from(c)));

// The SSE data payloads of a body (for checks the clients do not do themselves).
const sseData = (chunks) =>
  new TextDecoder()
    .decode(concat(chunks))
    .split(/\r\n|\r|\n/)
    .filter((line) => line.startsWith("data:"))
    .map((line) => line.slice(line.startsWith("data: ") ? 6 : 5))
    .filter((data) => data !== "[DONE]")
    .map((data) => JSON.parse(data));

const opt = (value) => (value === undefined ? null : value);

// Keep a preliminary result a message shows, once per value it takes.
const notePreliminary = (seen, toolCallId, value) => {
  const values = (seen[toolCallId] ??= []);
  if (values.length === 0 || JSON.stringify(values.at(-1)) !== JSON.stringify(value)) values.push(structuredClone(value));
};

// ---- assistant-ui: DataStreamDecoder / AssistantTransportDecoder + accumulator

const auiPart = (p) => {
  const parentId = opt(p.parentId);
  switch (p.type) {
    case "text":
      return { type: p.type, text: p.text, parentId };
    case "reasoning":
      return { type: p.type, text: p.text, unstable_summary: opt(p.unstable_summary), parentId };
    case "tool-call":
      return {
        type: "tool-call",
        toolCallId: p.toolCallId,
        toolName: p.toolName,
        argsText: p.argsText,
        args: p.args,
        state: p.state,
        hasResult: p.state === "result",
        result: opt(p.result),
        isError: p.isError ?? false,
        artifact: opt(p.artifact),
        parentId,
      };
    case "source":
      return { type: "source", id: p.id, url: p.url, title: opt(p.title), parentId };
    case "file":
      return { type: "file", data: p.data, mimeType: p.mimeType, parentId };
    default:
      return { type: p.type, unexpected: p };
  }
};

// What the newer features left on a part (read by the feature tests only).
const auiFeaturePart = (p) => {
  switch (p.type) {
    case "text":
    case "reasoning":
      return { type: p.type, text: p.text, providerMetadata: opt(p.providerMetadata) };
    case "tool-call":
      return { type: p.type, toolCallId: p.toolCallId, result: opt(p.result), isPreliminary: p.isPreliminary ?? false };
    case "data":
      return { type: p.type, name: p.name, data: p.data, parentId: opt(p.parentId) };
    default: {
      const { status, ...fields } = p;
      return fields;
    }
  }
};

const decodeAssistantUi = async (decoderName, chunks, clientState) => {
  const { AssistantMessageAccumulator, unstable_createInitialMessage, [decoderName]: Decoder } = await import(
    "assistant-stream"
  );
  const errors = [];
  let message = null;
  // As assistant-ui's runtimes do: the message starts from the state the client holds.
  const initialMessage = unstable_createInitialMessage({ unstable_state: clientState ?? null });
  let finishUsage = null; // the usage of the decoded message-finish chunk
  const seeFinish = new TransformStream({
    transform(chunk, controller) {
      if (chunk.type === "message-finish") finishUsage = opt(chunk.usage);
      controller.enqueue(chunk);
    },
  });
  const messages = bodyStream(chunks)
    .pipeThrough(new Decoder())
    .pipeThrough(seeFinish)
    .pipeThrough(new AssistantMessageAccumulator({ initialMessage, onError: (e) => errors.push(e) }));
  const preliminary = {}; // tool call id -> the preliminary results the message showed, in order
  for await (const m of messages) {
    message = m;
    for (const p of m.parts) if (p.type === "tool-call" && p.isPreliminary) notePreliminary(preliminary, p.toolCallId, p.result);
  }
  const meta = message.metadata;
  return {
    parts: message.parts.map(auiPart),
    data: meta.unstable_data,
    annotations: meta.unstable_annotations,
    state: meta.unstable_state,
    errors,
    steps: meta.steps.map((s) => ({
      messageId: s.messageId,
      finishReason: opt(s.finishReason),
      usage: opt(s.usage),
      isContinued: opt(s.isContinued),
    })),
    status: `${message.status.type}/${opt(message.status.reason)}`,
    features: {
      parts: message.parts.map(auiFeaturePart),
      statusError: opt(message.status.error),
      finishUsage,
      tokenCount: opt(meta.timing?.tokenCount),
      preliminary,
    },
  };
};

// ---- AI SDK: useChat's pipeline (AbstractChat + DefaultChatTransport) ----------

class PlainChatState {
  status = "ready";
  error = undefined;
  messages = [];
  preliminary = {}; // tool call id -> the preliminary outputs the message showed, in order
  pushMessage = (m) => {
    this.messages = this.messages.concat(m);
  };
  popMessage = () => {
    this.messages = this.messages.slice(0, -1);
  };
  replaceMessage = (i, m) => {
    this.messages = [...this.messages.slice(0, i), m, ...this.messages.slice(i + 1)];
    for (const p of m.parts) if (p.preliminary && p.state === "output-available") notePreliminary(this.preliminary, p.toolCallId, p.output);
  };
  snapshot = (thing) => structuredClone(thing);
}

// Imported on first use: each client library takes a while to load.
const loadAi = async () => {
  const { AbstractChat, DefaultChatTransport } = await import("ai");
  class Chat extends AbstractChat {
    constructor(init) {
      const state = new PlainChatState();
      state.messages = init.messages ?? [];
      super({ ...init, state });
      this.plainState = state;
    }
  }
  return { Chat, DefaultChatTransport };
};
let ai = null;

// Fields each UI message chunk may carry (AI SDK 5's strict schemas); AI SDK 7
// accepts extra keys, older clients reject them, so an extra key is a finding.
const UI_FIELDS = {
  start: ["messageId", "messageMetadata"],
  finish: ["finishReason", "messageMetadata"],
  abort: ["reason"],
  error: ["errorText"],
  "start-step": [],
  "finish-step": [],
  "message-metadata": ["messageMetadata"],
  "text-start": ["id", "providerMetadata"],
  "text-delta": ["id", "delta", "providerMetadata"],
  "text-end": ["id", "providerMetadata"],
  "reasoning-start": ["id", "providerMetadata"],
  "reasoning-delta": ["id", "delta", "providerMetadata"],
  "reasoning-end": ["id", "providerMetadata"],
  "tool-input-start": ["toolCallId", "toolName", "providerExecuted", "dynamic", "title"],
  "tool-input-delta": ["toolCallId", "inputTextDelta"],
  "tool-input-available": ["toolCallId", "toolName", "input", "providerExecuted", "providerMetadata", "dynamic", "title"],
  "tool-input-error": ["toolCallId", "toolName", "input", "providerExecuted", "providerMetadata", "dynamic", "errorText", "title"],
  "tool-output-available": ["toolCallId", "output", "providerExecuted", "dynamic", "preliminary"],
  "tool-output-error": ["toolCallId", "errorText", "providerExecuted", "dynamic"],
  "source-url": ["sourceId", "url", "title", "providerMetadata"],
  "source-document": ["sourceId", "mediaType", "title", "filename", "providerMetadata"],
  file: ["url", "mediaType", "providerMetadata"],
};

const checkUiFrameKeys = (frames, warnings) => {
  for (const frame of frames) {
    const allowed = frame.type.startsWith("data-") ? ["id", "data", "transient"] : UI_FIELDS[frame.type];
    if (allowed === undefined) continue; // the client itself rejects unknown types
    const extra = Object.keys(frame).filter((k) => k !== "type" && !allowed.includes(k));
    if (extra.length > 0) warnings.push(`strict-schema: ${frame.type} frame has extra keys ${extra.join(", ")}`);
  }
};

const uiPart = (p) => {
  if (p.type === "text" || p.type === "reasoning") return { type: p.type, text: p.text, state: opt(p.state) };
  if (p.type === "dynamic-tool" || p.type.startsWith("tool-")) {
    return {
      type: "tool-call",
      toolCallId: p.toolCallId,
      toolName: p.type === "dynamic-tool" ? p.toolName : p.type.slice(5),
      args: opt(p.input),
      state: p.state,
      hasResult: p.state === "output-available" || p.state === "output-error",
      result: p.state === "output-available" ? opt(p.output) : p.state === "output-error" ? p.errorText : null,
      isError: p.state === "output-error",
    };
  }
  if (p.type === "source-url") return { type: "source", id: p.sourceId, url: p.url, title: opt(p.title) };
  if (p.type === "file") return { type: "file", url: p.url, mediaType: p.mediaType };
  if (p.type.startsWith("data-")) return { type: "data", name: p.type.slice(5), id: opt(p.id), data: p.data };
  return { type: p.type };
};

// What the newer features left on a part (read by the feature tests only).
const uiFeaturePart = (p) => {
  if (p.type === "text" || p.type === "reasoning") return { type: p.type, text: p.text, providerMetadata: opt(p.providerMetadata) };
  if (p.type === "dynamic-tool" || p.type.startsWith("tool-")) {
    return {
      type: "tool-call",
      toolCallId: p.toolCallId,
      state: p.state,
      output: opt(p.output),
      preliminary: p.preliminary ?? false,
      callProviderMetadata: opt(p.callProviderMetadata),
    };
  }
  if (p.type === "source-document")
    return { type: p.type, sourceId: p.sourceId, mediaType: p.mediaType, title: p.title, filename: opt(p.filename) };
  if (p.type.startsWith("data-")) return { type: p.type, id: opt(p.id), data: p.data };
  return { type: p.type };
};

// messages, optional: the messages the chat holds before the run, whose last one the run
// continues (as `sendMessage()` continues it after a tool approval).
const decodeUiMessageStream = async (chunks, warnings, messages) => {
  ai ??= await loadAi();
  const { Chat, DefaultChatTransport } = ai;
  const frames = sseData(chunks);
  checkUiFrameKeys(frames, warnings);
  let finish = null;
  const toolCalls = []; // the calls useChat hands to onToolCall (to run them in the browser)
  const onData = []; // every data part useChat hands to onData, transient ones included
  const chat = new Chat({
    messages: messages ?? [],
    onToolCall: ({ toolCall }) => void toolCalls.push(toolCall.toolCallId),
    onData: (part) => void onData.push(structuredClone(part)),
    transport: new DefaultChatTransport({
      api: "http://127.0.0.1/api/chat",
      fetch: async () =>
        new Response(bodyStream(chunks), {
          headers: { "content-type": "text/event-stream", "x-vercel-ai-ui-message-stream": "v1" },
        }),
    }),
    onFinish: (options) => {
      finish = options;
    },
  });
  await (messages ? chat.sendMessage() : chat.sendMessage({ text: "hi" }));
  const chatState = chat.plainState;
  const error = chat.error;
  // An `error` frame surfaces as a plain Error with the frame's text; anything
  // else (schema, JSON, ordering) is the client rejecting the stream.
  if (error !== undefined && error.name !== "Error") throw error;
  const last = chat.messages.at(-1);
  const message = last?.role === "assistant" ? last : { parts: [] };
  return {
    parts: message.parts.map(uiPart),
    errors: frames.filter((f) => f.type === "error").map((f) => f.errorText),
    finishReason: opt(finish?.finishReason),
    chatError: error === undefined ? null : error.message,
    aborted: frames.some((f) => f.type === "abort"),
    onToolCall: toolCalls,
    features: {
      metadata: opt(message.metadata),
      stored: structuredClone(message), // the UIMessage as useChat keeps it
      parts: message.parts.map(uiFeaturePart),
      onData,
      preliminary: chatState.preliminary,
    },
  };
};

// ---- AG-UI: HttpAgent's pipeline (verifyEvents + defaultApplyEvents) -------------

const checkAgUiEvents = async (events, warnings) => {
  const { EventSchemas } = await import("@ag-ui/core/schemas");
  for (const event of events) {
    const parsed = EventSchemas.safeParse(event);
    if (!parsed.success) {
      warnings.push(`schema: ${event.type}: ${parsed.error.message.slice(0, 300)}`);
      continue;
    }
    const extra = Object.keys(event).filter((k) => !(k in parsed.data));
    if (extra.length > 0) warnings.push(`schema: ${event.type} event has unknown keys ${extra.join(", ")}`);
  }
};

const decodeAgUi = async (chunks, warnings, clientState) => {
  const events = sseData(chunks);
  await checkAgUiEvents(events, warnings);
  const { HttpAgent } = await import("@ag-ui/client");
  const agent = new HttpAgent({
    url: "http://127.0.0.1/agent",
    initialState: clientState ?? {},
    fetch: async () => new Response(bodyStream(chunks), { headers: { "content-type": "text/event-stream" } }),
  });
  let runError = null;
  await agent.runAgent({}, { onRunErrorEvent: ({ event }) => void (runError = event.message) });
  const messages = agent.messages.map((m) => {
    const base = { id: m.id, role: m.role, content: opt(m.content) };
    if (m.role === "assistant")
      return {
        ...base,
        toolCalls: (m.toolCalls ?? []).map((t) => ({ id: t.id, name: t.function.name, arguments: t.function.arguments })),
      };
    if (m.role === "tool") return { ...base, toolCallId: m.toolCallId, error: opt(m.error) };
    if (m.role === "activity") return { id: m.id, role: m.role, activityType: m.activityType, content: m.content };
    return base;
  });
  const terminal = events.filter((e) => e.type === "RUN_FINISHED" || e.type === "RUN_ERROR");
  return {
    messages,
    state: agent.state,
    runError,
    terminal: terminal.map((e) => e.type),
    outcome: terminal.length === 1 && terminal[0].type === "RUN_FINISHED" ? opt(terminal[0].outcome) : null,
    custom: events.filter((e) => e.type === "CUSTOM").map((e) => ({ name: e.name, value: e.value })),
    toolCallsEnded: events.filter((e) => e.type === "TOOL_CALL_END").map((e) => e.toolCallId),
    steps: events.filter((e) => e.type === "STEP_STARTED" || e.type === "STEP_FINISHED").map((e) => [e.type, e.stepName]),
    features: {
      terminalUsage: terminal.length === 1 ? opt(terminal[0].usage) : null,
      terminalMetadata: terminal.length === 1 ? opt(terminal[0].metadata) : null,
    },
  };
};

// ---- OpenAI: the npm SDK's ChatCompletionStream (client.chat.completions.stream) -------

const decodeOpenAi = async (chunks) => {
  const { default: OpenAI, APIError } = await import("openai");
  const client = new OpenAI({
    apiKey: "test",
    baseURL: "http://127.0.0.1/v1",
    maxRetries: 0,
    fetch: async () => new Response(bodyStream(chunks), { headers: { "content-type": "text/event-stream" } }),
  });
  const stream = client.chat.completions.stream({ model: "m", messages: [{ role: "user", content: "hi" }] });
  // An `error` event is the SDK's APIError: the client's view of a failed run, with what came before it.
  const errors = [];
  let choice = null;
  let usage = null;
  try {
    const completion = await stream.finalChatCompletion();
    choice = completion.choices[0] ?? null;
    usage = opt(completion.usage);
  } catch (error) {
    if (!(error instanceof APIError) || error.status !== undefined) throw error;
    errors.push(error.message);
    choice = stream.currentChatCompletionSnapshot?.choices[0] ?? null;
  }
  const message = choice?.message;
  return {
    text: message?.content ?? "",
    tool_calls: (message?.tool_calls ?? []).map((t) => ({ id: t.id, name: t.function.name, arguments: t.function.arguments })),
    finish_reason: errors.length > 0 ? null : opt(choice?.finish_reason),
    errors,
    features: { usage },
  };
};

// ---- batch driver ----------------------------------------------------------------

const DECODERS = {
  "data-stream": (chunks, warnings, clientState) => decodeAssistantUi("DataStreamDecoder", chunks, clientState),
  "assistant-transport": (chunks, warnings, clientState) =>
    decodeAssistantUi("AssistantTransportDecoder", chunks, clientState),
  "ui-message-stream": (chunks, warnings) => decodeUiMessageStream(chunks, warnings),
  // clientState: the chat's messages, the last of which the stream continues
  "ui-message-stream-continuing": decodeUiMessageStream,
  "ag-ui": decodeAgUi,
  "openai-npm": decodeOpenAi,
};

const decodeOne = async ({ format, chunks, clientState }) => {
  const warnings = [];
  sink = warnings;
  try {
    const decode = DECODERS[format];
    if (decode === undefined) throw new Error(`unknown format ${format}`);
    const body = chunks.map((c) => new Uint8Array(Buffer.from(c, "base64")));
    // "features": what the newer features left, beside the message (read by the feature tests only).
    const { features = null, ...message } = await decode(body, warnings, clientState);
    return { message, features, warnings, error: null };
  } catch (error) {
    const text = `${error?.name ?? "Error"}: ${error?.message ?? String(error)}`;
    return { message: null, features: null, warnings, error: text };
  } finally {
    sink = null;
  }
};

const lines = createInterface({ input: process.stdin, crlfDelay: Infinity });
for await (const line of lines) {
  if (line.trim() === "") continue;
  const result = await decodeOne(JSON.parse(line));
  result.warnings.push(...orphanWarnings.splice(0));
  process.stdout.write(`${JSON.stringify(result)}\n`);
}
await new Promise((resolve) => setTimeout(resolve, 0));
if (orphanWarnings.length > 0) {
  process.stderr.write(`warnings after the last body:\n${orphanWarnings.join("\n")}\n`);
  process.exitCode = 1;
}
