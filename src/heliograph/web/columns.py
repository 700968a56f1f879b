"""Which columns the Requests table shows: the choice lives in the URL (``cols=a,b,c``).

A shared link shows the same columns as the page it was copied from, and every link the page
builds (sorting, filters, pages) keeps the choice. The default set is omitted from links, so
ordinary URLs stay short; unknown names are ignored, and Time is always shown (it is the
link to the request and the live feed's order).
"""

from __future__ import annotations

from dataclasses import dataclass

from starlette.datastructures import QueryParams


@dataclass(frozen=True, slots=True)
class Column:
    key: str
    label: str
    sort: str = ""  # the store's sort name, if the column can be sorted on
    num: bool = False  # right-aligned figures
    default: bool = True
    title: str = ""


COLUMNS: tuple[Column, ...] = (
    Column("time", "Time", sort="time"),
    Column("status", "Status"),
    Column("provider", "Provider"),
    Column("where", "Where", title="Local model (this machine or network) or cloud provider"),
    Column("model", "Model"),
    Column("user", "User"),
    Column("session", "Session"),
    Column("prompt", "Prompt"),
    Column("tokens", "Tokens", sort="tokens", num=True),
    Column("cost", "Cost", sort="cost", num=True),
    Column("latency", "Latency", sort="latency", num=True),
    Column("ttft", "TTFT", sort="ttft", num=True, title="Time to first token"),
    Column("tps", "Tokens/s", sort="tps", num=True, title="Output tokens per second"),
    Column("prompt_name", "Prompt name", default=False, title="The managed prompt it named"),
    Column("prompt_version", "Prompt version", default=False, title="The prompt's version"),
    Column("stream", "Stream", default=False, title="Whether the answer was streamed"),
    Column("error", "Error", default=False, title="The error message of a failed request"),
)
BY_KEY = {c.key: c for c in COLUMNS}
DEFAULT = tuple(c.key for c in COLUMNS if c.default)
ALWAYS = "time"


def chosen(query: QueryParams) -> tuple[str, ...]:
    """The columns asked for, in the table's order: ``cols=a,b`` or the picker's ``col=a&col=b``.

    Neither given, or no known name: the default set. Time is always included.
    """
    picked = query.getlist("col")
    if not picked:
        raw = query.get("cols", "")
        if not raw.strip():
            return DEFAULT
        picked = raw.split(",")
    wanted = {p.strip() for p in picked}
    if not wanted & BY_KEY.keys():
        return DEFAULT  # nothing known (a mistyped link): as if none were asked for
    return tuple(c.key for c in COLUMNS if c.key in wanted | {ALWAYS})


def param(cols: tuple[str, ...]) -> str:
    """The ``cols`` value for links: empty (left out) for the default set."""
    return "" if cols == DEFAULT else ",".join(cols)
