import {
  AssistantRuntimeProvider,
  ComposerPrimitive,
  ErrorPrimitive,
  MessagePrimitive,
  ThreadPrimitive,
  useAuiState,
} from "@assistant-ui/react";
import { toLanguageModelMessages, useDataStreamRuntime } from "@assistant-ui/react-data-stream";
import { useRef } from "react";

export default function App() {
  // POSTs the thread's messages to the server and reads the answer in the data stream format.
  const thread = useRef(null);
  const runtime = useDataStreamRuntime({ api: "/api/chat", body: () => withApprovals(thread.current.getState()) });
  thread.current = runtime.thread;
  return (
    <AssistantRuntimeProvider runtime={runtime}>
      <main>
        <h1>assistant-ui</h1>
        <p>
          Ask for a trip plan (&ldquo;Plan a weekend in Kyoto&rdquo;), to book a train (&ldquo;Book a train to
          Porto&rdquo;: it asks for your approval first), or mention &ldquo;error&rdquo; to see one.
        </p>
        <ThreadPrimitive.Root>
          <ThreadPrimitive.Viewport>
            <ThreadPrimitive.Messages components={{ UserMessage, AssistantMessage }} />
          </ThreadPrimitive.Viewport>
          <ComposerPrimitive.Root>
            <ComposerPrimitive.Input id="prompt" placeholder="Ask..." submitMode="enter" />
            <ComposerPrimitive.Send id="send">Send</ComposerPrimitive.Send>
            <ComposerPrimitive.Cancel id="stop">Stop</ComposerPrimitive.Cancel>
          </ComposerPrimitive.Root>
          <Status />
        </ThreadPrimitive.Root>
      </main>
    </AssistantRuntimeProvider>
  );
}

// Approve / Deny continue the message that waits: the runtime sends the thread again. A denied
// call it settles itself, with an error result that the request carries, and the agent answers
// it. An approved call it sends without its `approval`, but the server runs a call only with its
// approval, signed by the server: so then the body's messages, which replace the runtime's, keep
// each approval on its call.
function withApprovals({ messages }) {
  const last = messages.at(-1);
  const approved = new Map(
    (last?.role === "assistant" ? last.content : [])
      .filter((part) => part.type === "tool-call" && part.approval?.approved === true && part.result === undefined)
      .map((part) => [part.toolCallId, part.approval]),
  );
  if (approved.size === 0) return {};
  const withApproval = (part) =>
    part.type === "tool-call" && approved.has(part.toolCallId) ? { ...part, approval: approved.get(part.toolCallId) } : part;
  return {
    messages: toLanguageModelMessages(messages).map((message) =>
      message.role === "assistant" ? { ...message, content: message.content.map(withApproval) } : message,
    ),
  };
}

function Status() {
  const running = useAuiState((s) => s.thread.isRunning);
  return (
    <p data-testid="status" data-status={running ? "running" : "ready"}>
      {running ? "Answering..." : "Ready"}
    </p>
  );
}

function UserMessage() {
  return (
    <MessagePrimitive.Root className="message user" data-testid="user-message">
      <MessagePrimitive.Parts />
    </MessagePrimitive.Root>
  );
}

function AssistantMessage() {
  // The run's state (the task list) arrives as state updates that the runtime applies to the message.
  const state = useAuiState((s) => s.message.metadata.unstable_state);
  return (
    <MessagePrimitive.Root className="message assistant" data-testid="assistant-message">
      {state?.tasks && <Tasks tasks={state.tasks} />}
      <MessagePrimitive.Parts components={{ Text, Reasoning, Source, tools: { Fallback: ToolCall } }} />
      <MessagePrimitive.Error>
        <ErrorPrimitive.Root className="error" data-testid="error">
          <ErrorPrimitive.Message />
        </ErrorPrimitive.Root>
      </MessagePrimitive.Error>
    </MessagePrimitive.Root>
  );
}

function Text({ text }) {
  return (
    <div className="text" data-testid="text">
      {text}
    </div>
  );
}

function Reasoning({ text }) {
  return (
    <div className="reasoning" data-testid="reasoning">
      {text}
    </div>
  );
}

function Source({ url, title }) {
  return (
    <div className="sources" data-testid="source">
      <a href={url}>{title ?? url}</a>
    </div>
  );
}

function ToolCall({ toolName, args, result, isError, approval, respondToApproval, status }) {
  // A call the server asks approval for waits, once the run has ended, for respondToApproval.
  const waiting = approval && approval.approved === undefined && status.type === "requires-action";
  return (
    <div className="tool" data-testid="tool-call" data-tool-name={toolName}>
      <strong>{toolName}</strong> <code>{JSON.stringify(args ?? {})}</code>
      {waiting && (
        <span className="approval">
          <button type="button" data-testid="approve" onClick={() => respondToApproval({ approved: true })}>
            Approve
          </button>
          <button type="button" data-testid="deny" onClick={() => respondToApproval({ approved: false })}>
            Deny
          </button>
        </span>
      )}
      {result !== undefined && (
        <pre className={isError ? "error" : undefined} data-testid="tool-result">
          {JSON.stringify(result)}
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
