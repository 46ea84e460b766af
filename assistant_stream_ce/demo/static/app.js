// The demo page: sends a chat request, decodes the stream in the chosen wire format, and renders it.
// No dependencies: each decoder below turns its format's frames into calls on a Message.
"use strict";

// ---------------------------------------------------------------------------------------------
// The message model: parts in order (reasoning, text, tool calls), sources, state, status. A tool call
// that waits for the person's approval keeps its signed approval request until they decide.

class Message {
  constructor() {
    this.parts = [];
    this.tools = new Map(); // toolCallId -> tool part
    this.sources = [];
    this.state = null;
    this.status = "streaming"; // streaming | complete | waiting (for a decision) | stopped | error
    this.error = null;
    this.resultCount = 0;
    this.serverReport = null; // how the server says the run ended (GET /api/runs/{id})
    this.onChange = () => {};
  }

  changed() { this.onChange(); }

  addTextPart(kind) {
    const part = { kind, text: "" };
    this.parts.push(part);
    this.changed();
    return part;
  }

  // Append to the last part when it is of the same kind, else start a new one (formats without part ids).
  appendText(kind, delta) {
    const last = this.parts[this.parts.length - 1];
    const part = last && last.kind === kind ? last : this.addTextPart(kind);
    part.text += delta;
    this.changed();
  }

  beginTool(toolCallId, toolName) {
    if (this.tools.has(toolCallId)) return this.tools.get(toolCallId);
    const part = {
      kind: "tool", toolCallId, toolName, argsText: "", argsDone: false, hasResult: false, result: null, isError: false, resultSeq: 0,
      approval: null, // {id, signature} of its approval request
      decision: null, // {approved, reason?} once the person decided
    };
    this.parts.push(part);
    this.tools.set(toolCallId, part);
    this.changed();
    return part;
  }

  toolArgs(toolCallId, delta) {
    const part = this.tools.get(toolCallId);
    if (part && !part.argsDone) { part.argsText += delta; this.changed(); }
  }

  toolArgsDone(toolCallId, args) {
    const part = this.tools.get(toolCallId);
    if (!part) return;
    if (args !== undefined && !part.argsText) part.argsText = JSON.stringify(args);
    part.argsDone = true;
    this.changed();
  }

  toolResult(toolCallId, result, isError) {
    const part = this.tools.get(toolCallId);
    if (!part || part.hasResult) return;
    part.argsDone = true;
    part.hasResult = true;
    part.result = result;
    part.isError = Boolean(isError);
    part.resultSeq = ++this.resultCount;
    this.changed();
  }

  requestApproval(toolCallId, approval) {
    const part = this.tools.get(toolCallId);
    if (!part || approval.approved !== undefined) return; // a decided approval shown again: nothing to ask
    part.argsDone = true;
    part.approval = { id: approval.id, signature: approval.signature };
    this.changed();
  }

  // The UI message stream says only that the call was denied: the page knows the reason it sent.
  toolDenied(toolCallId) {
    const part = this.tools.get(toolCallId);
    const reason = part && part.decision && part.decision.reason;
    this.toolResult(toolCallId, "The user denied this tool call." + (reason ? ` Reason: ${reason}` : ""), true);
  }

  waitsForDecision() { return this.parts.some((p) => p.kind === "tool" && p.approval && !p.decision); }

  addSource(source) {
    if (!this.sources.some((s) => s.id === source.id)) { this.sources.push(source); this.changed(); }
  }

  applyState(operations) {
    for (const op of operations) {
      const path = op.path;
      if (path.length === 0) {
        this.state = op.type === "set" ? structuredClone(op.value) : this.state + op.value;
        continue;
      }
      let target = this.state;
      for (const key of path.slice(0, -1)) target = target[key];
      const key = path[path.length - 1];
      if (op.type === "set") target[key] = structuredClone(op.value);
      else if (op.type === "append-text") target[key] += op.value;
    }
    this.changed();
  }

  setState(value) { this.state = structuredClone(value); this.changed(); }

  fail(text) { this.error = text; this.status = "error"; this.changed(); }

  finish(status) {
    if (this.status === "streaming") this.status = status;
    this.changed();
  }
}

// ---------------------------------------------------------------------------------------------
// Decoders. Each has push(text) for decoded body text and end() when the body ends; a body that
// ends before the format's finish frame was cut short (the run was stopped).

// AI SDK data stream: one `code:json` frame a line (assistant-ui adds `aui-state:`).
function dataStreamDecoder(message, onFrame) {
  let buffer = "";
  const handle = (line) => {
    if (!line) return; // keepalive
    onFrame(line);
    const colon = line.indexOf(":");
    const code = line.slice(0, colon);
    const value = JSON.parse(line.slice(colon + 1));
    switch (code) {
      case "0": message.appendText("text", value); break;
      case "g": message.appendText("reasoning", value); break;
      case "b": message.beginTool(value.toolCallId, value.toolName); break;
      case "c":
        message.toolArgs(value.toolCallId, value.argsTextDelta);
        if (value.isFinal) message.toolArgsDone(value.toolCallId);
        break;
      case "9": message.beginTool(value.toolCallId, value.toolName); message.toolArgsDone(value.toolCallId, value.args); break;
      case "a": message.toolResult(value.toolCallId, value.result, value.isError); break;
      case "h": message.addSource({ id: value.id, url: value.url, title: value.title }); break;
      case "3": message.fail(value); break;
      case "aui-state": message.applyState(value); break;
      case "aui-tool-call-approval": message.requestApproval(value.toolCallId, value.approval); break;
      case "d": message.finish(value.finishReason === "error" ? "error" : "complete"); break;
      default: break; // steps, data, files, annotations: not shown by this page
    }
  };
  return {
    push(text) {
      buffer += text;
      let newline;
      while ((newline = buffer.indexOf("\n")) >= 0) {
        const line = buffer.slice(0, newline);
        buffer = buffer.slice(newline + 1);
        handle(line);
      }
    },
    end() { if (buffer) handle(buffer); message.finish("stopped"); },
  };
}

// Server-sent events: calls onData(data) for each event's data (comments are keepalives).
function sseParser(onData) {
  let buffer = "";
  const flushEvent = (block) => {
    const data = block.split(/\r?\n/).filter((l) => l.startsWith("data:")).map((l) => l.slice(l.startsWith("data: ") ? 6 : 5));
    if (data.length) onData(data.join("\n"));
  };
  return {
    push(text) {
      buffer += text;
      let match;
      while ((match = /\r?\n\r?\n/.exec(buffer))) {
        flushEvent(buffer.slice(0, match.index));
        buffer = buffer.slice(match.index + match[0].length);
      }
    },
    end() { if (buffer.trim()) flushEvent(buffer); },
  };
}

// assistant-ui's assistant transport: SSE events addressing parts by path.
function assistantTransportDecoder(message, onFrame) {
  const byIndex = []; // part index on the wire -> our part
  const sse = sseParser((data) => {
    onFrame(data);
    if (data === "[DONE]") { message.finish("complete"); return; }
    const event = JSON.parse(data);
    const part = event.path && event.path.length ? byIndex[event.path[0]] : undefined;
    switch (event.type) {
      case "part-start": {
        const p = event.part;
        if (p.type === "text" || p.type === "reasoning") byIndex.push(message.addTextPart(p.type));
        else if (p.type === "tool-call") byIndex.push(message.beginTool(p.toolCallId, p.toolName));
        else if (p.type === "source") { message.addSource({ id: p.id, url: p.url, title: p.title }); byIndex.push(null); }
        else byIndex.push(null);
        break;
      }
      case "text-delta":
        if (part && part.kind === "tool") message.toolArgs(part.toolCallId, event.textDelta);
        else if (part) { part.text += event.textDelta; message.changed(); }
        break;
      case "tool-call-args-text-finish": if (part && part.kind === "tool") message.toolArgsDone(part.toolCallId); break;
      case "result": if (part && part.kind === "tool") message.toolResult(part.toolCallId, event.result, event.isError); break;
      case "tool-call-approval": if (part && part.kind === "tool") message.requestApproval(part.toolCallId, event.approval); break;
      case "update-state": message.applyState(event.operations); break;
      case "error": message.fail(event.error); break;
      default: break;
    }
  });
  return { push: sse.push, end() { sse.end(); message.finish("stopped"); } };
}

// AI SDK UI message stream: SSE events with explicit start/delta/end per part.
function uiMessageStreamDecoder(message, onFrame) {
  const parts = new Map(); // text/reasoning id -> part
  const sse = sseParser((data) => {
    onFrame(data);
    if (data === "[DONE]") { message.finish("complete"); return; }
    const event = JSON.parse(data);
    const type = event.type;
    if (type === "text-start" || type === "reasoning-start") parts.set(event.id, message.addTextPart(type.split("-")[0]));
    else if (type === "text-delta" || type === "reasoning-delta") {
      const part = parts.get(event.id);
      if (part) { part.text += event.delta; message.changed(); }
    } else if (type === "tool-input-start") message.beginTool(event.toolCallId, event.toolName);
    else if (type === "tool-input-delta") message.toolArgs(event.toolCallId, event.inputTextDelta);
    else if (type === "tool-input-available") { message.beginTool(event.toolCallId, event.toolName); message.toolArgsDone(event.toolCallId, event.input); }
    else if (type === "tool-output-available") message.toolResult(event.toolCallId, event.output, false);
    else if (type === "tool-output-error") message.toolResult(event.toolCallId, event.errorText, true);
    else if (type === "tool-approval-request") message.requestApproval(event.toolCallId, { id: event.approvalId, signature: event.signature });
    else if (type === "tool-output-denied") message.toolDenied(event.toolCallId);
    else if (type === "source-url") message.addSource({ id: event.sourceId, url: event.url, title: event.title });
    else if (type === "error") message.fail(event.errorText);
    else if (type === "abort") message.finish("stopped");
    else if (type === "finish") message.finish("complete");
    else if (type === "data-state") message.setState(event.data.state); // the format has no state frames
  });
  return { push: sse.push, end() { sse.end(); message.finish("stopped"); } };
}

const DECODERS = {
  "data-stream": dataStreamDecoder,
  "assistant-transport": assistantTransportDecoder,
  "ui-message-stream": uiMessageStreamDecoder,
};

// ---------------------------------------------------------------------------------------------
// Rendering.

const $ = (id) => document.getElementById(id);
const el = (tag, className, text) => {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
};

// JSON on one line, with a space after each separator.
function compactJson(value) {
  if (Array.isArray(value)) return `[${value.map(compactJson).join(", ")}]`;
  if (value && typeof value === "object") {
    return `{${Object.entries(value).map(([k, v]) => `${JSON.stringify(k)}: ${compactJson(v)}`).join(", ")}}`;
  }
  return JSON.stringify(value);
}

// JSON with one level expanded: short enough to read at a glance in a tool card.
function formatJson(value) {
  if (Array.isArray(value) && value.length) return `[\n${value.map((v) => "  " + compactJson(v)).join(",\n")}\n]`;
  if (value && typeof value === "object" && Object.keys(value).length > 2) {
    return `{\n${Object.entries(value).map(([k, v]) => `  ${JSON.stringify(k)}: ${compactJson(v)}`).join(",\n")}\n}`;
  }
  return compactJson(value);
}
function parseJson(text) {
  try { return { ok: true, value: JSON.parse(text) }; } catch { return { ok: false }; }
}
function ordinal(n) {
  const suffixes = ["th", "st", "nd", "rd"];
  const v = n % 100;
  return n + (suffixes[(v - 20) % 10] || suffixes[v] || suffixes[0]);
}

// Text with [n] citations turned into links to the numbered sources.
function renderText(node, text, sources) {
  node.replaceChildren();
  let last = 0;
  for (const match of text.matchAll(/\[(\d+)\]/g)) {
    node.append(text.slice(last, match.index));
    const source = sources[Number(match[1]) - 1];
    const sup = el("sup", "cite");
    if (source) {
      const a = el("a", "", match[1]);
      a.href = source.url; a.target = "_blank"; a.rel = "noopener"; a.title = source.title || source.url;
      sup.append(a);
    } else sup.textContent = match[1];
    node.append(sup);
    last = match.index + match[0].length;
  }
  node.append(text.slice(last));
}

const TASK_ICONS = { pending: "", running: "", waiting: "?", done: "✓", denied: "×", stopped: "×" };

// A card's state; the run's task list says when a tool finished before its result could be sent.
function toolStatus(part, tasks, messageStatus) {
  if (part.hasResult && part.decision && !part.decision.approved) return ["denied", "denied"];
  if (part.hasResult) return part.isError ? ["error", "error"] : ["done", `result · arrived ${ordinal(part.resultSeq)}`];
  if (part.approval && !part.decision) {
    return messageStatus === "waiting" ? ["approval", "waits for your approval"] : ["stopped", "not decided"];
  }
  if (messageStatus !== "streaming") return ["stopped", "no result: the run ended"];
  const task = tasks.find((t) => t.id === part.toolName);
  if (task && task.status === "done") return ["held", "finished · result waits for call order"];
  if (!part.argsDone && !parseJson(part.argsText).ok) return ["args", "streaming arguments"];
  return ["running", "running"];
}

function stoppedNotice(report) {
  if (!report) return "Stopped. Waiting for the server to confirm…";
  if (report.status === "cancelled") {
    return `Stopped: the server cancelled the run; its on_finish hook kept the ${report.textChars} characters of text ` +
      `and ${report.toolResults} of ${report.toolCalls} tool results you received.`;
  }
  return `Stopped here; the server reports the run as ${report.status}.`;
}

class MessageView {
  constructor(message, root) {
    this.message = message;
    this.root = root;
    this.partsNode = root.querySelector(".parts");
    this.sourcesNode = root.querySelector(".sources");
    this.noticeNode = root.querySelector(".notice");
    this.views = new Map(); // part -> {node, update}
  }

  render() {
    const m = this.message;
    const tasks = (m.state && Array.isArray(m.state.tasks)) ? m.state.tasks : [];
    for (const part of m.parts) {
      let view = this.views.get(part);
      if (!view) { view = this.createPartView(part); this.views.set(part, view); this.partsNode.append(view.node); }
      view.update(tasks);
    }
    this.root.dataset.status = m.status;
    this.sourcesNode.hidden = m.sources.length === 0;
    if (this.sourcesNode.children.length !== m.sources.length) {
      this.sourcesNode.replaceChildren(...m.sources.map((s) => {
        const li = el("li", "source");
        li.dataset.testid = "source";
        const a = el("a", "", s.title || s.url);
        a.href = s.url; a.target = "_blank"; a.rel = "noopener";
        li.append(a, el("span", "source-url", new URL(s.url).host));
        return li;
      }));
    }
    const notice = m.status === "error" ? `Error: ${m.error}` : m.status === "stopped" ? stoppedNotice(m.serverReport) :
      m.status === "waiting" ? "The assistant waits for your decision: approve or deny the call above." : "";
    this.noticeNode.hidden = !notice;
    this.noticeNode.textContent = notice;
    this.noticeNode.className = `notice ${m.status}`;
  }

  createPartView(part) {
    if (part.kind === "reasoning") {
      const node = el("details", "part reasoning");
      node.dataset.testid = "reasoning";
      node.open = true;
      const summary = el("summary", "", "Reasoning");
      const body = el("div", "reasoning-text");
      node.append(summary, body);
      return { node, update: () => { body.textContent = part.text; } };
    }
    if (part.kind === "text") {
      const node = el("div", "part text");
      node.dataset.testid = "text";
      return { node, update: () => renderText(node, part.text, this.message.sources) };
    }
    const node = el("div", "part tool");
    node.dataset.testid = "tool-call";
    node.dataset.toolName = part.toolName;
    const head = el("div", "tool-head");
    const name = el("code", "tool-name", part.toolName);
    const badge = el("span", "badge");
    head.append(el("span", "tool-icon"), name, badge);
    const args = el("pre", "tool-args");
    const result = el("pre", "tool-result");
    result.dataset.testid = "tool-result";
    const grid = el("div", "tool-grid");
    const argsBox = el("div", "tool-box"); argsBox.append(el("span", "label", "Arguments"), args);
    const resultBox = el("div", "tool-box"); resultBox.append(el("span", "label", "Result"), result);
    grid.append(argsBox, resultBox);
    const actions = el("div", "tool-actions");
    const approve = el("button", "primary", "Approve");
    const deny = el("button", "danger", "Deny");
    approve.type = deny.type = "button";
    approve.dataset.testid = "approve";
    deny.dataset.testid = "deny";
    approve.addEventListener("click", () => decide(this.message, part, true));
    deny.addEventListener("click", () => decide(this.message, part, false));
    actions.append(approve, deny);
    node.append(head, grid, actions);
    return {
      node,
      update: (tasks) => {
        const [state, label] = toolStatus(part, tasks, this.message.status);
        node.dataset.state = state;
        badge.textContent = label;
        actions.hidden = state !== "approval";
        const parsed = parseJson(part.argsText);
        args.textContent = parsed.ok ? formatJson(parsed.value) : part.argsText || "…";
        resultBox.hidden = !part.hasResult;
        if (part.hasResult) {
          result.textContent = typeof part.result === "string" ? part.result : formatJson(part.result);
          node.dataset.resultSeq = String(part.resultSeq);
        }
      },
    };
  }
}

// The task list of the run state; a task still running when the run ended was stopped with it.
function renderTasks(state, runStatus) {
  const tasks = state && Array.isArray(state.tasks) ? state.tasks : [];
  $("tasks-empty").hidden = tasks.length > 0;
  const list = $("tasks");
  while (list.children.length > tasks.length) list.lastChild.remove();
  tasks.forEach((task, i) => {
    let li = list.children[i];
    if (!li) {
      li = el("li", "task");
      li.dataset.testid = "task";
      li.append(el("span", "task-icon"), el("span", "task-title"), el("span", "task-status"));
      list.append(li);
    }
    const status = task.status === "running" && runStatus !== "streaming" ? "stopped" : task.status;
    li.dataset.taskId = task.id;
    li.dataset.status = status;
    li.querySelector(".task-icon").textContent = TASK_ICONS[status] || "";
    li.querySelector(".task-title").textContent = task.title;
    li.querySelector(".task-status").textContent = status;
  });
}

// ---------------------------------------------------------------------------------------------
// The page.

const page = {
  format: "data-stream",
  formats: [],
  history: [], // {role, content} sent with each request
  run: null, // the latest run: {id, message, view, abort, started, frames}
  wireLines: [],
};

const STATUS_LABELS = { idle: "idle", streaming: "streaming", complete: "complete", waiting: "waits for you", stopped: "stopped", error: "error" };

function setRunStatus(status) {
  const node = $("run-status");
  node.dataset.status = status;
  node.textContent = STATUS_LABELS[status] || status;
}

function logWire(text) {
  page.wireLines.push(text.length > 400 ? text.slice(0, 400) + " …" : text);
  if (page.wireLines.length > 400) page.wireLines.splice(0, page.wireLines.length - 400);
  const wire = $("wire");
  if ($("wire-details").open) {
    wire.textContent = page.wireLines.join("\n");
    wire.scrollTop = wire.scrollHeight;
  }
}

let renderQueued = false;
function scheduleRender() {
  if (renderQueued) return;
  renderQueued = true;
  requestAnimationFrame(() => {
    renderQueued = false;
    const run = page.run;
    if (!run) return;
    const thread = $("thread");
    const atBottom = thread.scrollHeight - thread.scrollTop - thread.clientHeight < 80;
    run.view.render();
    renderTasks(run.message.state, run.message.status);
    $("run-frames").textContent = String(run.frames);
    if (atBottom) thread.scrollTop = thread.scrollHeight; // follow the answer unless the reader scrolled up
  });
}

function append(templateId) {
  const node = $(templateId).content.firstElementChild.cloneNode(true);
  $("thread").append(node);
  return node;
}

function newRunId() {
  return (crypto.randomUUID ? crypto.randomUUID() : String(Date.now()) + Math.random().toString(16).slice(2)).replaceAll("-", "");
}

function setBusy(busy) {
  $("send").hidden = busy;
  $("stop").hidden = !busy;
  $("prompt").disabled = busy;
  for (const input of document.querySelectorAll("#formats input")) input.disabled = busy;
}

async function showServerReport(runId, response) {
  const node = $("run-server");
  try {
    const report = response || await (await fetch(`/api/runs/${runId}?wait=3`)).json();
    if (!page.run || page.run.id !== runId) return;
    page.run.message.serverReport = report;
    page.run.message.changed();
    node.dataset.status = report.status;
    node.textContent = report.status === "running" ? "still running" :
      `${report.status} · on_finish saw ${report.textChars} chars, ${report.toolResults}/${report.toolCalls} results`;
  } catch (err) {
    node.textContent = `no report (${err})`;
  }
}

const textOf = (message) => message.parts.filter((p) => p.kind === "text").map((p) => p.text).join("");

async function send(prompt) {
  prompt = prompt.trim();
  if (!prompt || page.run && page.run.message.status === "streaming") return;
  $("welcome").hidden = true;
  const userNode = append("tpl-user");
  userNode.querySelector(".bubble").textContent = prompt;
  page.history.push({ role: "user", content: prompt });

  const message = new Message();
  const root = append("tpl-assistant");
  root.dataset.format = page.format;
  $("thread").scrollTop = $("thread").scrollHeight;
  await streamRun(message, new MessageView(message, root), { messages: page.history });
}

// The person's decision on a call that waits for approval: the next run continues the same message
// with it (the call, its signed approval request and the decision; the server verifies them).
async function decide(message, part, approved) {
  if (!page.run || page.run.message !== message || message.status !== "waiting" || part.decision) return;
  part.decision = approved ? { approved } : { approved, reason: "Not now" };
  const approval = {
    toolCallId: part.toolCallId, toolName: part.toolName, args: JSON.parse(part.argsText),
    approvalId: part.approval.id, signature: part.approval.signature, ...part.decision,
  };
  await streamRun(message, page.run.view, { messages: page.history, approval });
}

// One run streamed into `message` (a new one, or the one a decision continues).
async function streamRun(message, view, body) {
  const previous = page.run;
  const run = {
    id: newRunId(), message, view, abort: new AbortController(), started: performance.now(), frames: 0,
  };
  page.run = run;
  if (previous && previous.view !== view) previous.view.render(); // its undecided calls can no longer be decided
  message.status = "streaming";
  message.serverReport = null;
  const textBefore = textOf(message);
  message.onChange = scheduleRender;
  $("run-id").textContent = run.id.slice(0, 12);
  $("run-format").textContent = page.formats.find((f) => f.id === page.format)?.label || page.format;
  $("run-server").textContent = "…";
  delete $("run-server").dataset.status;
  page.wireLines = [];
  $("wire").textContent = "";
  setRunStatus("streaming");
  setBusy(true);
  const timer = setInterval(() => { $("run-elapsed").textContent = `${((performance.now() - run.started) / 1000).toFixed(1)} s`; }, 100);

  const decoder = DECODERS[page.format](message, (frame) => { run.frames++; logWire(frame); });
  try {
    const response = await fetch(`/api/chat?format=${encodeURIComponent(page.format)}`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ runId: run.id, ...body }),
      signal: run.abort.signal,
    });
    if (!response.ok) throw new Error((await response.json()).error || `HTTP ${response.status}`);
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      decoder.push(value);
    }
    decoder.end();
  } catch (err) {
    if (err.name === "AbortError") message.finish("stopped");
    else message.fail(err.message || String(err));
  }
  clearInterval(timer);
  $("run-elapsed").textContent = `${((performance.now() - run.started) / 1000).toFixed(1)} s`;
  const text = textOf(message).slice(textBefore.length);
  if (text) page.history.push({ role: "assistant", content: text });
  if (message.status === "complete" && message.waitsForDecision()) message.status = "waiting";
  setRunStatus(message.status);
  setBusy(false);
  scheduleRender();
  if (message.status !== "stopped") await showServerReport(run.id);
  $("prompt").focus();
}

// Stop: abort the request (the server sees the disconnect and cancels the run), then ask the
// server to cancel it by id too, which also reports how the run ended.
async function stop() {
  const run = page.run;
  if (!run || run.message.status !== "streaming") return;
  $("stop").disabled = true;
  run.abort.abort();
  try {
    const response = await fetch(`/api/cancel/${run.id}`, { method: "POST" });
    await showServerReport(run.id, await response.json());
  } finally {
    $("stop").disabled = false;
  }
}

function chooseFormat(id) {
  page.format = id;
  const fmt = page.formats.find((f) => f.id === id);
  $("tasks-hint").textContent = fmt && fmt.state === "data" ? "run state, sent as data parts" : "run state";
  for (const input of document.querySelectorAll("#formats input")) input.checked = input.value === id;
}

async function init() {
  const config = await (await fetch("/api/config")).json();
  page.formats = config.formats;
  const fieldset = $("formats");
  for (const fmt of config.formats) {
    const label = el("label", "format");
    const input = el("input");
    input.type = "radio"; input.name = "format"; input.value = fmt.id;
    input.addEventListener("change", () => chooseFormat(fmt.id));
    label.append(input, el("span", "", fmt.label));
    fieldset.append(label);
  }
  chooseFormat(new URLSearchParams(location.search).get("format") || config.defaultFormat);
  $("server-badge").textContent = `${config.server} · ${config.backend} · ${config.agent}`;

  const prompt = $("prompt");
  $("composer").addEventListener("submit", (event) => {
    event.preventDefault();
    const text = prompt.value;
    prompt.value = "";
    prompt.style.height = "";
    send(text);
  });
  prompt.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey) { event.preventDefault(); $("composer").requestSubmit(); }
  });
  prompt.addEventListener("input", () => { prompt.style.height = ""; prompt.style.height = `${Math.min(prompt.scrollHeight, 160)}px`; });
  $("stop").addEventListener("click", stop);
  for (const chip of document.querySelectorAll(".chip")) chip.addEventListener("click", () => send(chip.dataset.prompt));
  $("wire-details").addEventListener("toggle", () => { $("wire").textContent = page.wireLines.join("\n"); });
  document.body.dataset.ready = "true";
  prompt.focus();
}

init();
