"""web.session_transcript: a session's requests as one conversation, each message once, in
order, linked to the request that sent or produced it; regenerations, edits, tool calls,
background tasks and errors."""

from __future__ import annotations

from typing import Any

import orjson

from heliograph.web.session_transcript import MAX_REQUESTS, build

SYSTEM = {"role": "system", "content": "You are helpful. Today is Monday."}


def _user(text: str) -> dict[str, Any]:
    return {"role": "user", "content": text}


def _bot(text: str) -> dict[str, Any]:
    return {"role": "assistant", "content": text}


class Session:
    """Rows and bodies as the session page reads them."""

    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []
        self.bodies: dict[str, tuple[bytes | None, bytes | None]] = {}

    def add(
        self,
        messages: list[dict[str, Any]],
        answer: dict[str, Any] | None,
        *,
        task: str | None = None,
        state: str = "ok",
        error: str = "",
    ) -> str:
        rid = f"r{len(self.rows)}"
        self.rows.append(
            {
                "id": rid,
                "created_ms": 1000 * len(self.rows),
                "kind": "llm",
                "task": task,
                "model": "m",
                "state": state,
            }
        )
        response = (
            {"error": {"message": error}}
            if error
            else {"choices": [{"message": answer}]}
            if answer
            else None
        )
        self.bodies[rid] = (
            orjson.dumps({"model": "m", "messages": messages}),
            orjson.dumps(response) if response else None,
        )
        return rid

    def turns(self) -> list[tuple[str, str, str, str]]:
        """(role, text, request id, fork) of each turn."""
        t = build(self.rows, self.bodies)
        return [(x.message.role, x.message.text, x.request_id, x.fork) for x in t.turns]


def test_a_resent_history_shows_each_message_once_in_order() -> None:
    s = Session()
    r0 = s.add([SYSTEM, _user("hi")], _bot("hello"))
    r1 = s.add([SYSTEM, _user("hi"), _bot("hello"), _user("how are you?")], _bot("fine"))
    # the client reformatted whitespace and changed the date in the system prompt
    system2 = {"role": "system", "content": "You are helpful. Today is Tuesday."}
    history = [system2, _user("hi "), _bot("hello"), _user("how are you?"), _bot("fine")]
    r2 = s.add([*history, _user("ok")], _bot("ok!"))
    s.add([_user("Generate a title for: hi")], _bot("Greetings"), task="title_generation")
    assert s.turns() == [
        ("system", SYSTEM["content"], r0, ""),
        ("user", "hi", r0, ""),
        ("assistant", "hello", r0, ""),
        ("user", "how are you?", r1, ""),
        ("assistant", "fine", r1, ""),
        ("system", system2["content"], r2, ""),
        ("user", "ok", r2, ""),
        ("assistant", "ok!", r2, ""),
    ]
    t = build(s.rows, s.bodies)
    assert t.tasks == 1 and t.skipped == 0 and t.unreadable == 0
    assert [x.source for x in t.turns][1:3] == ["prompt", "output"]


def test_a_repeated_message_is_kept() -> None:
    s = Session()
    s.add([_user("continue")], _bot("one"))
    r1 = s.add([_user("continue"), _bot("one"), _user("continue")], _bot("two"))
    assert [t[1] for t in s.turns()] == ["continue", "one", "continue", "two"]
    assert s.turns()[2][2] == r1


def test_regenerated_answers_edits_and_threads_are_marked() -> None:
    s = Session()
    s.add([_user("q")], _bot("a1"))
    r1 = s.add([_user("q")], _bot("a2"))  # regenerate
    r2 = s.add([_user("q"), _bot("a1"), _user("more")], _bot("b"))
    r3 = s.add([_user("q"), _bot("a1"), _user("MORE, edited")], _bot("c"))
    r4 = s.add([_user("another thread")], _bot("d"))
    assert s.turns()[2:] == [
        ("assistant", "a2", r1, "regenerated"),
        ("user", "more", r2, ""),
        ("assistant", "b", r2, ""),
        ("user", "MORE, edited", r3, "edited"),
        ("assistant", "c", r3, ""),
        ("user", "another thread", r4, "thread"),
        ("assistant", "d", r4, ""),
    ]


def test_tool_calls_errors_and_retries() -> None:
    s = Session()
    call = {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": "c1",
                "type": "function",
                "function": {"name": "weather", "arguments": '{"city": "Oslo"}'},
            }
        ],
    }
    result = {"role": "tool", "tool_call_id": "c1", "content": "rain"}
    r0 = s.add([_user("weather?")], call)
    r1 = s.add([_user("weather?"), call, result], None, state="error", error="overloaded")
    r2 = s.add([_user("weather?"), call, result], _bot("It rains."))
    t = build(s.rows, s.bodies)
    got = [(x.message.role, x.request_id, x.fork, x.status_class) for x in t.turns]
    assert got == [
        ("user", r0, "", "ok"),
        ("assistant", r0, "", "ok"),
        ("tool", r1, "", "err"),
        ("error", r1, "", "err"),
        ("assistant", r2, "", "ok"),  # the retry's answer is no "regeneration" of an error
    ]
    parts = t.turns[1].message.parts
    assert parts[0].kind == "tool_call" and parts[0].name == "weather" and "Oslo" in parts[0].text


def test_unreadable_and_capped() -> None:
    s = Session()
    s.add([_user("x")], _bot("y"))
    s.bodies["r0"] = (None, None)
    s.rows.append({"id": "emb", "created_ms": 5, "kind": "other", "task": None})
    t = build(s.rows, s.bodies)
    assert t.turns == [] and t.unreadable == 1
    big = Session()
    for i in range(MAX_REQUESTS + 5):
        big.add([_user(f"q{i}")], _bot(f"a{i}"))
    t = build(big.rows, big.bodies)
    assert t.skipped == 5 and t.turns[0].message.text == "q5"
