"""What the simulated models say: made-up answers of varied length, and Open WebUI task answers.

Answers are sentences drawn from a small bank, split into one piece per token the way streams
deliver them. A request that carries one of Open WebUI's background-task prompts (a title, tags
or follow-ups for the chat) gets the JSON object Open WebUI expects, so its chats get titles.
"""

from __future__ import annotations

import json
import math
import random
import re

SENTENCES = (
    "Here is a short answer based on what you asked.",
    "Let me think step by step: first we list the facts, then we compare them.",
    "The main trade-off is latency against cost, and caching helps with both.",
    "Streaming the answer lets the user read while the rest is still being generated.",
    "A smaller model is usually fast enough for classification and routing.",
    "For longer documents, split the text into sections and summarise each one.",
    "You can check the result by running the tests again after the change.",
    "The error comes from a missing configuration value, not from the code itself.",
    "Most of the time goes into reading the prompt, so a shorter context is faster.",
    "I would keep the retry count low and add a timeout to every call.",
    "The second option is simpler, and simpler is easier to operate at night.",
    "In short: measure first, then optimise the part that is actually slow.",
    "This function returns early when the list is empty, which avoids the crash.",
    "Paris is the capital of France and also its largest city.",
    "Your order left the warehouse yesterday and should arrive within two days.",
    "Refunds are processed within five business days after the item is received.",
)
AFTER_TOOL = (
    "According to the order system, the parcel is on its way.",
    "The lookup found one matching record, summarised below.",
    "Based on the tool result, nothing else needs to be done today.",
)
TITLES = (
    ("order", "📦 Order Status Check"),
    ("refund", "💸 Refund Question"),
    ("france", "🇫🇷 Capital of France"),
    ("test", "🧪 Fixing Failing Tests"),
    ("sql", "🗄️ SQL Query Help"),
    ("summar", "📝 Document Summary"),
    ("poem", "✍️ A Short Poem"),
    ("haiku", "✍️ Haiku Writing"),
    ("python", "🐍 Python Question"),
    ("latency", "⏱️ Latency Tuning"),
)
TAGS = (
    ("order", ["Customer Support", "Shopping"]),
    ("code", ["Technology", "Programming"]),
    ("python", ["Technology", "Programming", "Python"]),
    ("sql", ["Technology", "Databases"]),
    ("poem", ["Creative Writing"]),
)
_TASK = re.compile(r"^\s*###\s*Task:\s*(.*)")
_HISTORY = re.compile(r"<chat_history>(.*?)</chat_history>", re.S)


def _pieces(text: str) -> list[str]:
    """One piece per token, as a stream delivers them (words, with their leading space)."""
    words = text.split(" ")
    return [w if i == 0 else " " + w for i, w in enumerate(words)]


def answer_words(rng: random.Random, after_tool: bool, limit: int | None) -> list[str]:
    """An answer of varied length: a median of about 55 tokens, sometimes several hundred."""
    target = int(min(max(rng.lognormvariate(math.log(55), 0.7), 8), 320))
    if limit is not None:
        target = min(target, max(limit, 1))
    sentences = [rng.choice(AFTER_TOOL)] if after_tool else []
    words = sum(len(s.split(" ")) for s in sentences)
    while words < target:
        sentence = rng.choice(SENTENCES)
        sentences.append(sentence)
        words += len(sentence.split(" "))
    return _pieces(" ".join(sentences))[:target]


def task_answer(prompt: str, rng: random.Random) -> list[str] | None:
    """The answer to one of Open WebUI's task prompts, or None when it is not one."""
    found = _TASK.match(prompt)
    if found is None:
        return None
    what = found.group(1).lower()
    chat = _HISTORY.search(prompt)
    history = (chat.group(1) if chat else prompt).lower()
    if "title" in what:
        title = next((t for word, t in TITLES if word in history), "💬 General Chat")
        doc: dict[str, object] = {"title": title}
    elif "tags" in what:
        tags = next((t for word, t in TAGS if word in history), ["General"])
        doc = {"tags": tags}
    else:
        doc = {"follow_ups": rng.sample(FOLLOW_UPS, 3)}
    return _pieces(json.dumps(doc, ensure_ascii=False))


FOLLOW_UPS = (
    "Can you explain that in more detail?",
    "What would you do differently?",
    "Can you give me an example?",
    "How long would that take?",
    "Is there a simpler way?",
)
