import { HttpAgent } from "@ag-ui/client";
import { useState } from "react";

// The AG-UI client: it POSTs the thread (messages, state) and applies the events it reads back.
const agent = new HttpAgent({ url: "/api/chat" });

// The agent's messages split into turns: a user message and what answered it.
function turnsOf(messages) {
  const turns = [];
  for (const message of messages) {
    if (message.role === "user" || turns.length === 0) turns.push({ question: null, answer: [] });
    if (message.role === "user") turns[turns.length - 1].question = message;
    else turns[turns.length - 1].answer.push(message);
  }
  return turns;
}

export default function App() {
  const [messages, setMessages] = useState([]);
  const [state, setState] = useState(null);
  const [sources, setSources] = useState({}); // by turn; AG-UI has no source event: CUSTOM "source"
  const [running, setRunning] = useState(false);
  const [error, setError] = useState(null);
  const [input, setInput] = useState("");
  // The calls that wait for a decision: a run that ends with RUN_FINISHED's outcome "interrupt"
  // leaves one interrupt per call (reason "tool_approval", its toolCallId) in pendingInterrupts.
  const [interrupts, setInterrupts] = useState([]);

  async function submit(event) {
    event.preventDefault();
    if (!input.trim() || running || interrupts.length > 0) return;
    agent.addMessage({ id: crypto.randomUUID(), role: "user", content: input });
    setInput("");
    await run({});
  }

  // Approve / Deny: the next run answers the interrupt (every open one must be answered); the
  // server verifies the decision, then sends the call's result (or the denial) and goes on.
  async function decide(interrupt, approved) {
    await run({ resume: [{ interruptId: interrupt.id, status: "resolved", payload: { approved } }] });
  }

  async function run(parameters) {
    const turn = agent.messages.filter((message) => message.role === "user").length - 1;
    setError(null);
    setInterrupts([]);
    setRunning(true);
    try {
      await agent.runAgent(
        { runId: crypto.randomUUID(), ...parameters },
        {
          onMessagesChanged: ({ messages }) => setMessages([...messages]),
          onStateChanged: ({ state }) => setState(state),
          onCustomEvent: ({ event }) => {
            if (event.name === "source") {
              setSources((all) => ({ ...all, [turn]: [...(all[turn] ?? []), event.value] }));
            }
          },
          onRunErrorEvent: ({ event }) => setError(event.message),
        },
      );
    } catch (err) {
      if (err.name !== "AbortError") setError((shown) => shown ?? err.message);
    } finally {
      setMessages([...agent.messages]);
      setInterrupts([...agent.pendingInterrupts]);
      setRunning(false);
    }
  }

  const turns = turnsOf(messages);
  return (
    <main>
      <h1>AG-UI</h1>
      <p>
        Ask for a trip plan (&ldquo;Plan a weekend in Kyoto&rdquo;), to book a train (&ldquo;Book a train to
        Porto&rdquo;: it asks for your approval first), or mention &ldquo;error&rdquo; to see one.
      </p>
      {turns.map((turn, i) => (
        <div key={turn.question?.id ?? i}>
          {turn.question && (
            <div className="message user" data-testid="user-message">
              {turn.question.content}
            </div>
          )}
          <Answer
            messages={turn.answer}
            sources={sources[i] ?? []}
            tasks={i === turns.length - 1 ? state?.tasks : undefined}
            interrupts={running ? [] : interrupts}
            decide={decide}
          />
        </div>
      ))}
      {error && (
        <p className="error" data-testid="error">
          {error}
        </p>
      )}
      <form onSubmit={submit}>
        <input id="prompt" value={input} onChange={(event) => setInput(event.target.value)} placeholder="Ask..." />
        {/* The next run must answer every open interrupt: a new message waits for the decision. */}
        <button id="send" type="submit" disabled={running || interrupts.length > 0}>
          Send
        </button>
        {/* Aborts the request: the server sees the client go and cancels the run. */}
        <button id="stop" type="button" onClick={() => agent.abortRun()} disabled={!running}>
          Stop
        </button>
      </form>
      <p data-testid="status" data-status={running ? "running" : "ready"}>
        {running ? "Answering..." : "Ready"}
      </p>
    </main>
  );
}

function Answer({ messages, sources, tasks, interrupts, decide }) {
  const results = Object.fromEntries(
    messages.filter((message) => message.role === "tool").map((message) => [message.toolCallId, message.content]),
  );
  return (
    <div className="message assistant" data-testid="assistant-message">
      {tasks && <Tasks tasks={tasks} />}
      {messages.map((message) => (
        <div key={message.id}>
          {message.role === "reasoning" && (
            <div className="reasoning" data-testid="reasoning">
              {message.content}
            </div>
          )}
          {message.role === "assistant" && message.content && (
            <div className="text" data-testid="text">
              {message.content}
            </div>
          )}
          {message.toolCalls?.map((call) => (
            <ToolCall
              key={call.id}
              call={call}
              result={results[call.id]}
              interrupt={interrupts.find((interrupt) => interrupt.toolCallId === call.id)}
              decide={decide}
            />
          ))}
        </div>
      ))}
      {sources.length > 0 && (
        <ol className="sources">
          {sources.map((source) => (
            <li key={source.id} data-testid="source">
              <a href={source.url}>{source.title ?? source.url}</a>
            </li>
          ))}
        </ol>
      )}
    </div>
  );
}

function ToolCall({ call, result, interrupt, decide }) {
  const name = call.function.name;
  return (
    <div className="tool" data-testid="tool-call" data-tool-name={name}>
      <strong>{name}</strong> <code>{call.function.arguments}</code>
      {interrupt && (
        <span className="approval">
          <button type="button" data-testid="approve" onClick={() => decide(interrupt, true)}>
            Approve
          </button>
          <button type="button" data-testid="deny" onClick={() => decide(interrupt, false)}>
            Deny
          </button>
        </span>
      )}
      {result !== undefined && <pre data-testid="tool-result">{result}</pre>}
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
