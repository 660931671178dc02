"""Engine `anthropic`: the agent loop over the Messages API with the SPEC §5 tools.

One `run` is one stage: the model replies, opus executes the tools it asked for in the
worktree and answers with their results, until the role's end condition (the planner
and reviewer submit, the coder ends its turn) or a cap (turns, tokens, wall time,
budget) or the loop guard stops it. Retries on 429/5xx/overloaded are the SDK's own
(`agents.max_retries`); what is left after them becomes an `EngineError`, carrying what
the stage's answered calls spent (`partial`) so the budgets count it. Each answered
call's usage goes to `task.on_spend` as soon as it is known: a killed stage keeps it.
Which error each answer becomes (a refused key stops claiming, a refused request fails
the job, a retired model names its key) is `api_errors.py`'s table.

Each `stop_reason` is handled as Anthropic's "Handling stop reasons" page describes:
`refusal` and `model_context_window_exceeded` fail the stage; a tool call cut by
`max_tokens` is never executed but asked again with a larger `max_tokens`; `pause_turn`
is continued by sending the paused assistant turn back as it is; an empty reply is never
sent back as an empty assistant message (the API rejects those).
"""

from __future__ import annotations

import contextlib
import dataclasses
import threading
from typing import Any

import anthropic

from opus.clock import SystemClock
from opus.config import AgentsConfig, SandboxConfig
from opus.domain import Role, Usage
from opus.engines.api_errors import Call, no_credentials, translate
from opus.engines.base import AgentFailed, one_line, stopped
from opus.engines.loop_guard import LoopGuard
from opus.engines.models import check_models, max_output_tokens, model_key, tools_for
from opus.engines.pricing import cost_usd
from opus.engines.tools import CACHE_CONTROL, Toolbox
from opus.errors import EngineError
from opus.seams import AgentResult, AgentTask, Clock, StopReason
from opus.trace import mark

# A planner or reviewer that ends its turn without submitting is reminded this many
# times; models sometimes "say" the plan in prose first and submit when asked.
MAX_NUDGES = 2
# The smallest per-request timeout handed to the SDK, so a nearly spent stage can still
# make one short call instead of failing instantly.
MIN_REQUEST_TIMEOUT_S = 5.0
CUT_OFF = "Your reply was cut off by the output limit. Continue exactly where you stopped."
CONTINUE_CODER = (
    "Continue with the task. When it is done, end your turn with a short summary of what "
    "changed, in which files, and how it was tested."
)


class AnthropicEngine:
    """Implements `opus.seams.Engine` on the official SDK; thread-safe, one per daemon."""

    def __init__(
        self,
        agents: AgentsConfig,
        sandbox_cfg: SandboxConfig,
        *,
        client: anthropic.Anthropic | None = None,
        clock: Clock | None = None,
    ) -> None:
        check_models(agents)  # a model without opus's tools is a config error at start
        self.agents = agents
        self.sandbox_cfg = sandbox_cfg
        self.clock: Clock = clock or SystemClock()
        self._client = client
        self._client_lock = threading.Lock()

    def run(self, task: AgentTask) -> AgentResult:
        """Run one stage for `task` (see the module docstring)."""
        return _Run(self, task).execute()

    def notices(self) -> list[str]:
        """What the job's log should say once about the configured models: each one the
        installed SDK lists as deprecated, with the key that chose it and its end of life."""
        from opus.engines.deprecations import deprecated_models

        return [str(found) for found in deprecated_models(self.agents)]

    def connect_ahead(self) -> None:
        """Make the SDK client on a thread now (its TLS setup takes tens of milliseconds)
        while the job readies its worktree; a failure is left to the first call."""
        threading.Thread(target=self._try_client, name="anthropic-client", daemon=True).start()

    def _try_client(self) -> None:
        with contextlib.suppress(EngineError):
            _ = self.client

    @property
    def client(self) -> anthropic.Anthropic:
        """The SDK client, made on first use (it reads ANTHROPIC_API_KEY/BASE_URL itself)."""
        with self._client_lock:
            if self._client is None:
                try:
                    self._client = anthropic.Anthropic(max_retries=self.agents.max_retries)
                except (anthropic.AnthropicError, ValueError) as exc:
                    raise EngineError(
                        f"cannot create the Anthropic client: {exc}; set ANTHROPIC_API_KEY "
                        "(and ANTHROPIC_BASE_URL for a proxy)"
                    ) from exc
                if not _has_credentials(self._client):
                    # The SDK would raise a bare TypeError at the first call.
                    self._client = None
                    raise no_credentials()
            return self._client


class _Run:
    """The state of one stage's conversation."""

    def __init__(self, engine: AnthropicEngine, task: AgentTask) -> None:
        self.engine = engine
        self.task = task
        self.toolbox = Toolbox(
            task.role,
            task.worktree,
            task.sandbox,
            command_timeout_s=engine.sandbox_cfg.command_timeout_s,
            versions=tools_for(task.model),
            can_ask=task.can_ask,
        )
        self.max_output = max_output_tokens(task.model)
        self.call_max_tokens = min(engine.agents.max_tokens, self.max_output)
        self.tools = self.toolbox.definitions()
        self.system = [
            {"type": "text", "text": task.system_prompt, "cache_control": dict(CACHE_CONTROL)}
        ]
        self.messages: list[dict[str, Any]] = [_user_text(task.user_message)]
        self.usage = Usage()
        self.turns = 0
        self.nudges = 0
        self.last_text = ""
        self.guard = LoopGuard()
        self.deadline = engine.clock.monotonic() + task.timeout_s

    # ------------------------------------------------------------------ the loop

    def execute(self) -> AgentResult:
        try:
            return self._loop()
        finally:
            self.toolbox.close()

    def _loop(self) -> AgentResult:
        while True:
            cap = self._cap_reached()
            if cap is not None:
                return self._stop(*cap)
            reply = self._call()
            if reply is None:
                return self._stop("timeout", f"the stage ran past its {self.task.timeout_s:.0f}s.")
            result = self._handle(reply)
            if result is not None:
                return result

    def _handle(self, reply: anthropic.types.Message) -> AgentResult | None:
        self.turns += 1
        self.usage += _usage_of(reply)
        # Billed: recorded before anything else happens (a tool, a stop, the next call).
        self.task.on_spend(self.usage, self._cost())
        blocks = _assistant_blocks(reply)
        texts = [b["text"] for b in blocks if b["type"] == "text"]
        if texts:
            self.last_text = texts[-1]
        uses = [b for b in reply.content if b.type == "tool_use"]
        names = ", ".join(b.name for b in uses) or "no tool calls"
        self.task.on_activity(
            f"{self.task.role} turn {self.turns}: {reply.stop_reason} ({names})"
            + (f": {one_line(self.last_text, 80)}" if texts else "")
        )
        stop = reply.stop_reason
        if stop in ("refusal", "model_context_window_exceeded"):
            raise AgentFailed(self._failure(stop), self._result("end_turn", {}))
        if stop == "max_tokens" and uses:
            return self._grow_output(uses)
        self._add_assistant(blocks)
        if stop == "pause_turn":
            return None  # resend as it is: the API continues the paused turn
        if uses:
            return self._run_tools(uses)
        if stop == "max_tokens":
            self._say(CUT_OFF)
            return None
        return self._turn_ended(empty=not blocks)

    def _failure(self, stop: str) -> str:
        role, model = self.task.role, self.task.model
        said = f" Its last words: {one_line(self.last_text, 200)}" if self.last_text else ""
        if stop == "refusal":
            return (
                f"the {role} model {model} declined to continue (stop_reason refusal), so "
                f"the stage has no result.{said} Rephrase the feature request or choose "
                f"another model (agents.{role}_model), then `opus retry`"
            )
        return (
            f"the {role}'s conversation filled the context window of {model} after "
            f"{self.turns} turns (stop_reason model_context_window_exceeded), so its last "
            "reply was cut off. Split the feature request into smaller ones, lower "
            "pipeline.max_turns, or use a model with a larger context window, then `opus retry`"
        )

    def _grow_output(self, uses: list[anthropic.types.ToolUseBlock]) -> AgentResult | None:
        """A tool call cut by max_tokens has partial input: ask again with a larger limit."""
        names = ", ".join(use.name for use in uses)
        if self.call_max_tokens >= self.max_output:
            raise AgentFailed(
                f"the {self.task.role}'s call of {names} did not fit in {self.call_max_tokens} "
                f"output tokens, the most {self.task.model} can write in one reply, so it was "
                "not executed; ask for smaller steps in the feature request (for example "
                "several smaller files), then `opus retry`",
                self._result("end_turn", {}),
            )
        self.call_max_tokens = min(self.call_max_tokens * 2, self.max_output)
        self.task.on_activity(
            f"{names} was cut off by max_tokens and not executed; asking again with "
            f"max_tokens {self.call_max_tokens}"
        )
        return None

    def _add_assistant(self, blocks: list[dict[str, Any]]) -> None:
        """Record the model's turn; an empty one is not recorded (the API rejects it)."""
        if not blocks:
            return
        last = self.messages[-1]
        if last["role"] == "assistant":  # continuing a paused turn: one assistant message
            last["content"].extend(blocks)
        else:
            self.messages.append({"role": "assistant", "content": blocks})

    def _say(self, text: str) -> None:
        """Add `text` as opus's next user turn (after tool results, if the turn has some)."""
        last = self.messages[-1]
        if last["role"] == "user":
            last["content"].append({"type": "text", "text": text})
        else:
            self.messages.append(_user_text(text))

    def _run_tools(self, uses: list[anthropic.types.ToolUseBlock]) -> AgentResult | None:
        results: list[dict[str, Any]] = []
        for use in uses:
            loop = self.guard.before(use.name, use.input)
            if loop is not None:
                return self._stop("loop", f"{loop}.")
            self.task.on_activity(f"{use.name}: {one_line(_describe_call(use.input), 120)}")
            outcome = self.toolbox.execute(use.name, use.input)
            if outcome.submission is not None:
                return self._result("submitted", outcome.submission)
            if outcome.questions is not None:
                self.task.on_activity(f"{self.task.role} asked {len(outcome.questions)} "
                                      "question(s); the job waits for a person")
                return self._result("asked", {"questions": outcome.questions})
            results.append(
                {
                    "type": "tool_result",
                    "tool_use_id": use.id,
                    "content": outcome.result.content,
                    "is_error": outcome.result.is_error,
                }
            )
            loop = self.guard.after(use.name, use.input, failed=outcome.result.is_error)
            if loop is not None:
                return self._stop("loop", f"{loop}.")
        self.messages.append({"role": "user", "content": results})
        return None

    def _turn_ended(self, *, empty: bool) -> AgentResult | None:
        if self.task.role is Role.CODER:
            if empty and self.nudges < MAX_NUDGES:
                # An empty end_turn is not a summary: the docs' remedy is a continue prompt.
                self.nudges += 1
                self._say(CONTINUE_CODER)
                return None
            return self._result("end_turn", {"summary": self.last_text or "(no summary given)"})
        submit = self.toolbox.submit_name
        if self.nudges >= MAX_NUDGES:
            partial = self._result("end_turn", {})
            raise AgentFailed(
                f"the {self.task.role} ended its turn {self.nudges + 1} times without calling "
                f"{submit}, so the stage has no result; retry the job, or adjust the "
                f"{self.task.role} prompt in vault/00_system/prompts/",
                partial,
            )
        self.nudges += 1
        self._say(f"You ended your turn without calling {submit}. Call {submit} now.")
        return None

    # ------------------------------------------------------------------ caps

    def _cap_reached(self) -> tuple[StopReason, str] | None:
        task = self.task
        if task.should_stop():
            # StopReason has no "interrupted"; the caller polls should_stop itself.
            return "timeout", "opus asked it to stop (stage stuck or daemon shutting down)."
        if self.engine.clock.monotonic() >= self.deadline:
            return "timeout", f"the stage ran past its {task.timeout_s:.0f}s wall-time limit."
        if self.turns >= task.max_turns:
            return "max_turns", f"it used all {task.max_turns} turns (pipeline.max_turns)."
        if self.usage.total >= task.max_tokens:
            return "max_tokens", (
                f"it used {self.usage.total} tokens, over the stage limit of {task.max_tokens} "
                "(pipeline.max_stage_tokens)."
            )
        if self._cost() >= task.budget_usd:
            return "budget", (
                f"it spent ${self._cost():.4f}, reaching the ${task.budget_usd:.4f} left in "
                "the job's budget (budget.job_usd or the FR's budget)."
            )
        return None

    def _cost(self) -> float:
        return cost_usd(self.task.model, self.usage, self.engine.agents.prices)

    def _stop(self, reason: StopReason, detail: str) -> AgentResult:
        self.task.on_activity(f"{self.task.role} stopped ({reason}): {one_line(detail)}")
        return stopped(
            self.task,
            reason,
            detail,
            summary=self.last_text,
            usage=self.usage,
            cost_usd=self._cost(),
            turns=self.turns,
        )

    def _result(self, reason: StopReason, output: dict[str, Any]) -> AgentResult:
        return AgentResult(
            stop_reason=reason,
            output=output,
            usage=self.usage,
            cost_usd=self._cost(),
            turns=self.turns,
        )

    # ------------------------------------------------------------------ the API

    def _call(self) -> anthropic.types.Message | None:
        """One model call; None when the stage's wall time ran out during it."""
        remaining = self.deadline - self.engine.clock.monotonic()
        try:
            client = self.engine.client
            mark("model request")
            reply = client.messages.create(
                model=self.task.model,
                max_tokens=self.call_max_tokens,
                system=self.system,  # type: ignore[arg-type]
                tools=self.tools,  # type: ignore[arg-type]
                messages=_with_breakpoint(self.messages),  # type: ignore[arg-type]
                timeout=max(remaining, MIN_REQUEST_TIMEOUT_S),
            )
        except anthropic.APITimeoutError as exc:
            if self.engine.clock.monotonic() >= self.deadline:
                return None
            raise self._with_spent(translate(exc, self._described())) from exc
        except anthropic.AnthropicError as exc:
            raise self._with_spent(translate(exc, self._described())) from exc
        self.task.on_answer()
        return reply

    def _described(self) -> Call:
        agents, role = self.engine.agents, self.task.role
        return Call(str(role), self.task.model, model_key(agents, role), agents.max_retries)

    def _with_spent(self, error: EngineError) -> EngineError:
        """`error` carrying what the stage's earlier calls spent, so the pipeline counts
        it against the budgets (the failed call itself is not billed)."""
        if self.turns:
            error.partial = dataclasses.replace(self._result("end_turn", {}), report=str(error))
        return error


def _has_credentials(client: anthropic.Anthropic) -> bool:
    """Whether the SDK found something to authenticate with (a key, a token, or a
    credentials provider from its own discovery)."""
    found = (client.api_key, client.auth_token, getattr(client, "credentials", None))
    return any(value is not None for value in found)


def _user_text(text: str) -> dict[str, Any]:
    return {"role": "user", "content": [{"type": "text", "text": text}]}


def _with_breakpoint(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The messages with a cache breakpoint on the latest user turn only.

    Older breakpoints are dropped: the API allows four, and system + tools use two. The
    latest user turn is the last message except while a paused assistant turn is resent.
    """
    index = max(i for i, message in enumerate(messages) if message["role"] == "user")
    blocks = [dict(block) for block in messages[index]["content"]]
    blocks[-1]["cache_control"] = dict(CACHE_CONTROL)
    out = [*messages[:index], {**messages[index], "content": blocks}, *messages[index + 1 :]]
    if out[-1]["role"] == "assistant":
        out[-1] = _without_trailing_whitespace(out[-1])
    return out


def _without_trailing_whitespace(message: dict[str, Any]) -> dict[str, Any]:
    """A final (paused) assistant turn as the API accepts it: its text may not end in
    whitespace."""
    blocks = [dict(block) for block in message["content"]]
    if blocks[-1].get("type") == "text":
        blocks[-1]["text"] = blocks[-1]["text"].rstrip()
    return {**message, "content": blocks}


def _assistant_blocks(reply: anthropic.types.Message) -> list[dict[str, Any]]:
    """The reply's content as request blocks; whitespace-only text is dropped (the API
    rejects text blocks without non-whitespace text)."""
    blocks: list[dict[str, Any]] = []
    for block in reply.content:
        if block.type == "text":
            if block.text.strip():
                blocks.append({"type": "text", "text": block.text})
        elif block.type == "tool_use":
            blocks.append(
                {"type": "tool_use", "id": block.id, "name": block.name, "input": block.input}
            )
        else:  # thinking and other blocks go back as the API sent them
            blocks.append(block.model_dump(exclude_none=True))
    return blocks


def _usage_of(reply: anthropic.types.Message) -> Usage:
    u = reply.usage
    return Usage(
        input_tokens=u.input_tokens,
        output_tokens=u.output_tokens,
        cache_read_tokens=u.cache_read_input_tokens or 0,
        cache_write_tokens=u.cache_creation_input_tokens or 0,
    )


def _describe_call(tool_input: Any) -> str:
    if isinstance(tool_input, dict):
        if "command" in tool_input and "path" in tool_input:
            return f"{tool_input['command']} {tool_input['path']}"
        if "command" in tool_input:
            return str(tool_input["command"])
    return str(tool_input)
