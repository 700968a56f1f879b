"""What the demo's clients ask: questions, system prompts, tools and Open WebUI's task prompts.

The task prompts follow Open WebUI's default templates (their opening lines and layout, shortened
guidelines), so Heliograph recognises them as it recognises the real ones.
"""

from __future__ import annotations

import json
import random
from typing import Any

CHAT = (
    "What is the capital of France?",
    "Write a haiku about observability.",
    "Explain time to first token to a new engineer.",
    "Summarise this article in three bullet points: local models are getting faster.",
    "Help me write a polite email declining a meeting.",
    "How do I read a Python stack trace?",
    "Write a short poem about a lighthouse.",
    "What is a good SQL index for a table of events by time?",
)
FOLLOW_UPS = (
    "Can you make it shorter?",
    "Why is that?",
    "Give me an example.",
    "And what about the edge cases?",
    "Thanks! How would you test it?",
    "Can you say it more formally?",
)
SUPPORT_SYSTEM = (
    "You are the support assistant of Acme Shop. Be brief and friendly. Use the tools to look "
    "up orders; never invent an order status."
)
SUPPORT = (
    "Where is my order A-1042?",
    "Which of my orders shipped late?",
    "Can I get a refund for a damaged item?",
    "How do I change the delivery address of my order?",
    "My order arrived without the charger, what can I do?",
)
SUPPORT_FOLLOW_UPS = (
    "Can you check my other order too?",
    "When will it arrive?",
    "What is your refund policy?",
    "Great, thanks. Can I still change the delivery address?",
    "Is there a fee for that?",
)
SUPPORT_TOOLS: tuple[dict[str, Any], ...] = (
    {
        "type": "function",
        "function": {
            "name": "search_orders",
            "description": "Find a customer's orders and their shipping status.",
            "parameters": {
                "type": "object",
                "properties": {"order_id": {"type": "string"}, "query": {"type": "string"}},
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "get_refund_policy",
            "description": "The refund policy for a product category.",
            "parameters": {"type": "object", "properties": {"category": {"type": "string"}}},
        },
    },
)
CODE_SYSTEM = "You are a senior engineer reviewing code. Answer with concrete changes."
CODE = (
    "Why does this test fail only on CI?",
    "Review this SQL query for performance: SELECT * FROM events ORDER BY ts DESC.",
    "Refactor this function to avoid the nested loops.",
    "Write a Python function that parses ISO 8601 dates.",
    "Why is my asyncio task never awaited?",
)
CODE_FOLLOW_UPS = (
    "Can you show the full function?",
    "What about thread safety?",
    "Add a test for the empty case.",
    "Is there a faster way?",
    "Explain the second change.",
)
TOPICS = ("the quarterly report", "a customer email thread", "the incident review", "a blog post")


def tool_result(rng: random.Random, call: dict[str, Any]) -> dict[str, Any]:
    """What the support bot's own code answers to a tool call, as the next turn carries it."""
    name = (call.get("function") or {}).get("name")
    if name == "get_refund_policy":
        result: dict[str, Any] = {"days": 30, "condition": "unused or damaged on arrival"}
    else:
        status = rng.choice(("shipped", "in transit", "delivered", "delayed"))
        result = {"orders": [{"id": f"A-{rng.randint(1000, 9999)}", "status": status}]}
    return {"role": "tool", "tool_call_id": call.get("id", ""), "content": json.dumps(result)}


def document(rng: random.Random) -> str:
    """A made-up document for the digest job, a few hundred tokens long."""
    sentences = [
        "Revenue grew in every region except the north, where a supplier was late.",
        "The team shipped the new search page and fixed two long-standing bugs.",
        "Customers asked for a dark mode and faster exports.",
        "Support tickets fell by a tenth after the new help pages went live.",
        "The on-call week was quiet apart from one disk that filled up overnight.",
    ]
    body = " ".join(rng.choice(sentences) for _ in range(rng.randint(12, 40)))
    return f"Document: {rng.choice(TOPICS)}.\n\n{body}"


_TASKS = {
    "title_generation": (
        "Generate a concise, 3-5 word title with an emoji summarizing the chat history.",
        "- The title should clearly represent the main theme or subject of the conversation.\n"
        "- Your entire response must consist solely of the JSON object.",
        'JSON format: { "title": "your concise title here" }',
        2,
    ),
    "tags_generation": (
        "Generate 1-3 broad tags categorizing the main themes of the chat history, along with "
        "1-3 more specific subtopic tags.",
        "- Start with high-level domains (e.g. Science, Technology, Arts, Business, Health).\n"
        "- Use the chat's primary language; default to English if multilingual.",
        'JSON format: { "tags": ["tag1", "tag2", "tag3"] }',
        6,
    ),
    "follow_up_generation": (
        "Suggest 3-5 relevant follow-up questions or prompts that the user might naturally ask "
        "next in this conversation as a **user**, based on the chat history, to help continue "
        "or deepen the discussion.",
        "- Write all follow-up questions from the user's point of view.\n"
        "- Make questions concise, clear, and directly related to the discussed topic(s).",
        'JSON format: { "follow_ups": ["Question 1?", "Question 2?", "Question 3?"] }',
        6,
    ),
}


def openwebui_task(task: str, messages: list[dict[str, Any]]) -> str:
    """Open WebUI's prompt for a background task over the chat so far."""
    instruction, guidelines, output, last = _TASKS[task]
    history = "\n".join(f"{m['role'].upper()}: {m.get('content') or ''}" for m in messages[-last:])
    return (
        f"### Task:\n{instruction}\n### Guidelines:\n{guidelines}\n### Output:\n{output}\n"
        f"### Chat History:\n<chat_history>\n{history}\n</chat_history>"
    )
