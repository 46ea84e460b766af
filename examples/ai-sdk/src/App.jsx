import { useChat } from "@ai-sdk/react";
import { useEffect, useState } from "react";

// The chat's id is in the address, so that a reloaded page asks the server for the answer
// that is still streaming (useChat's `resume`: GET /api/chat/<id>/stream).
function chatIdFromAddress() {
  const url = new URL(window.location.href);
  let id = url.searchParams.get("chat");
  if (!id) {
    id = crypto.randomUUID();
    url.searchParams.set("chat", id);
    window.history.replaceState(null, "", url);
  }
  return id;
}

const chatId = chatIdFromAddress();
const storageKey = `chat:${chatId}`;

// The messages of earlier turns are kept in the browser; an application would load them from its server.
function storedMessages() {
  return JSON.parse(localStorage.getItem(storageKey) ?? "[]");
}

export default function App() {
  const { messages, sendMessage, addToolApprovalResponse, stop, status, error } = useChat({
    id: chatId,
    messages: storedMessages(),
    resume: true,
  });
  const [input, setInput] = useState("");
  const busy = status === "submitted" || status === "streaming";

  useEffect(() => {
    // An answer still streaming is not kept: after a reload the server streams it again.
    const last = messages[messages.length - 1];
    const settled = busy && last?.role === "assistant" ? messages.slice(0, -1) : messages;
    localStorage.setItem(storageKey, JSON.stringify(settled));
  }, [messages, busy]);

  function submit(event) {
    event.preventDefault();
    if (!input.trim() || busy) return;
    sendMessage({ text: input });
    setInput("");
  }

  // Approve / Deny: the decision goes on the tool part, and the next request carries it to the
  // server, which runs the call (or sends the denial) and continues this assistant message.
  async function decide(part, approved) {
    await addToolApprovalResponse({ id: part.approval.id, approved });
    sendMessage();
  }

  async function stopAnswer() {
    // The run outlives its request (that is what makes it resumable), so it is cancelled by name.
    await fetch(`/api/chat/${chatId}/cancel`, { method: "POST" });
    stop();
  }

  return (
    <main>
      <h1>useChat</h1>
      <p>
        Ask for a trip plan (&ldquo;Plan a weekend in Kyoto&rdquo;), to book a train (&ldquo;Book a train to
        Porto&rdquo;: it asks for your approval first), or mention &ldquo;error&rdquo; to see one. Reload the page
        while it answers: the answer carries on.
      </p>
      {messages.map((message) =>
        message.role === "user" ? (
          <div key={message.id} className="message user" data-testid="user-message">
            {message.parts.map((part, i) => (part.type === "text" ? <span key={i}>{part.text}</span> : null))}
          </div>
        ) : (
          <AssistantMessage key={message.id} message={message} decide={busy ? null : decide} />
        ),
      )}
      {error && (
        <p className="error" data-testid="error">
          {error.message}
        </p>
      )}
      <form onSubmit={submit}>
        <input id="prompt" value={input} onChange={(event) => setInput(event.target.value)} placeholder="Ask..." />
        <button id="send" type="submit" disabled={busy}>
          Send
        </button>
        <button id="stop" type="button" onClick={stopAnswer} disabled={!busy}>
          Stop
        </button>
      </form>
      <p data-testid="status" data-status={busy ? "running" : "ready"}>
        {busy ? "Answering..." : "Ready"}
      </p>
    </main>
  );
}

function AssistantMessage({ message, decide }) {
  // The task list is the run's state; each change arrives as a `data-state` part, the newest wins.
  const state = message.parts.findLast((part) => part.type === "data-state")?.data.state;
  const sources = message.parts.filter((part) => part.type === "source-url");
  return (
    <div className="message assistant" data-testid="assistant-message">
      {state && <Tasks tasks={state.tasks} />}
      {message.parts.map((part, i) => {
        if (part.type === "reasoning") {
          return (
            <div key={i} className="reasoning" data-testid="reasoning">
              {part.text}
            </div>
          );
        }
        if (part.type === "text") {
          return (
            <div key={i} className="text" data-testid="text">
              {part.text}
            </div>
          );
        }
        if (part.type.startsWith("tool-")) {
          return (
            <ToolCall key={part.toolCallId} name={part.type.slice("tool-".length)} part={part} decide={decide} />
          );
        }
        return null;
      })}
      {sources.length > 0 && (
        <ol className="sources">
          {sources.map((source) => (
            <li key={source.sourceId} data-testid="source">
              <a href={source.url}>{source.title ?? source.url}</a>
            </li>
          ))}
        </ol>
      )}
    </div>
  );
}

function ToolCall({ name, part, decide }) {
  return (
    <div className="tool" data-testid="tool-call" data-tool-name={name} data-state={part.state}>
      <strong>{name}</strong> <code>{JSON.stringify(part.input ?? {})}</code>
      {part.state === "approval-requested" && decide && (
        <span className="approval">
          <button type="button" data-testid="approve" onClick={() => decide(part, true)}>
            Approve
          </button>
          <button type="button" data-testid="deny" onClick={() => decide(part, false)}>
            Deny
          </button>
        </span>
      )}
      {part.state === "output-denied" && (
        <pre className="error" data-testid="tool-result">
          Denied{part.approval?.reason ? `: ${part.approval.reason}` : ""}
        </pre>
      )}
      {part.state === "output-available" && <pre data-testid="tool-result">{JSON.stringify(part.output)}</pre>}
      {part.state === "output-error" && (
        <pre className="error" data-testid="tool-result">
          {part.errorText}
        </pre>
      )}
    </div>
  );
}

function Tasks({ tasks }) {
  return (
    <ul className="tasks" data-testid="tasks">
      {tasks.map((task) => (
        <li key={task.id} data-testid="task" data-task-id={task.id} data-status={task.status}>
          {task.title}: {task.status}
        </li>
      ))}
    </ul>
  );
}
