import {
  AssistantRuntimeProvider,
  ComposerPrimitive,
  ErrorPrimitive,
  MessagePrimitive,
  ThreadPrimitive,
  useAuiState,
} from "@assistant-ui/react";
import { useDataStreamRuntime } from "@assistant-ui/react-data-stream";

export default function App() {
  // POSTs the thread's messages to the server and reads the answer in the data stream format.
  const runtime = useDataStreamRuntime({ api: "/api/chat" });
  return (
    <AssistantRuntimeProvider runtime={runtime}>
      <main>
        <h1>assistant-ui</h1>
        <p>
          Ask for a trip plan (&ldquo;Plan a weekend in Kyoto&rdquo;), or mention &ldquo;error&rdquo; to see one.
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

function ToolCall({ toolName, args, result, isError }) {
  return (
    <div className="tool" data-testid="tool-call" data-tool-name={toolName}>
      <strong>{toolName}</strong> <code>{JSON.stringify(args ?? {})}</code>
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
