"""Cost computation: exact nano-USD against hand calculations from published prices.

Hand calculations use nano-USD per token = (USD per million tokens) x 1000, so a published
price of $2.50 / 1M tokens is 2_500 nUSD per token. Prices are genai-prices 0.2.3's, checked
against the providers' published price pages (noted where they disagree).
"""

from __future__ import annotations

import socket
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from genai_prices import Usage as GenaiUsage
from genai_prices import calc_price

from heliograph.pricing import Cost, GpuHourPrice, PriceBook, PriceOverride, Usage, catalog
from heliograph.pricing.rates import round_div

AFTER_O3_CUT = datetime(2025, 7, 1, 12, 0, tzinfo=UTC)  # o3 dropped to $2/$8 on 2025-06-10
BEFORE_O3_CUT = datetime(2025, 5, 1, 12, 0, tzinfo=UTC)
DEEPSEEK_PEAK = datetime(2025, 3, 3, 12, 0, tzinfo=UTC)  # standard hours: 00:30-16:30 UTC
DEEPSEEK_OFF_PEAK = datetime(2025, 3, 3, 20, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def book() -> PriceBook:
    return PriceBook()


def parts(cost: Cost) -> tuple[int | None, int | None, int | None, int | None]:
    return cost.input_nusd, cost.output_nusd, cost.cache_read_nusd, cost.cache_write_nusd


def assert_consistent(cost: Cost) -> None:
    """Known costs: all amounts are ints (no float, no bool) and total == sum of parts."""
    amounts = [cost.total_nusd, *parts(cost)]
    if not cost.known:
        assert amounts == [None] * 5
        return
    assert all(type(amount) is int for amount in amounts), amounts
    assert cost.total_nusd == sum(parts(cost))  # type: ignore[arg-type]


# --- OpenAI ---------------------------------------------------------------------------


def test_gpt_4o_with_cached_prompt(book: PriceBook) -> None:
    usage = Usage(prompt_tokens=2000, completion_tokens=500, cached_tokens=1024)
    cost = book.cost(provider="openai", model="gpt-4o", usage=usage)
    # gpt-4o: $2.50 input, $1.25 cached input, $10.00 output per 1M tokens
    assert parts(cost) == ((2000 - 1024) * 2_500, 500 * 10_000, 1024 * 1_250, 0)
    assert cost.total_nusd == 2_440_000 + 5_000_000 + 1_280_000
    assert cost.source == "genai-prices"
    assert cost.price_ref == "openai/gpt-4o (genai-prices 0.2.3)"
    assert_consistent(cost)


def test_gpt_4o_mini(book: PriceBook) -> None:
    usage = Usage(prompt_tokens=12, completion_tokens=9)
    cost = book.cost(provider="openai", model="gpt-4o-mini", usage=usage)
    # gpt-4o-mini: $0.15 input, $0.60 output per 1M tokens
    assert cost.total_nusd == 12 * 150 + 9 * 600 == 7_200


def test_dated_snapshots_resolve_to_their_own_price(book: PriceBook) -> None:
    usage = Usage(prompt_tokens=1000, completion_tokens=1000)
    aug = book.cost(provider="openai", model="gpt-4o-2024-08-06", usage=usage)
    # gpt-4o-2024-08-06 is priced as gpt-4o: $2.50 / $10.00
    assert aug.total_nusd == 1000 * 2_500 + 1000 * 10_000
    assert aug.price_ref == "openai/gpt-4o (genai-prices 0.2.3)"
    may = book.cost(provider="openai", model="gpt-4o-2024-05-13", usage=usage)
    # the first gpt-4o snapshot kept its launch price: $5.00 / $15.00
    assert may.total_nusd == 1000 * 5_000 + 1000 * 15_000
    assert may.price_ref == "openai/gpt-4o-2024-05-13 (genai-prices 0.2.3)"


def test_o1_bills_reasoning_tokens_as_output(book: PriceBook) -> None:
    usage = Usage(prompt_tokens=100, completion_tokens=1500, reasoning_tokens=1200)
    cost = book.cost(provider="openai", model="o1-2024-12-17", usage=usage)
    # o1: $15.00 input, $60.00 output; the 1200 reasoning tokens are inside the 1500
    assert parts(cost) == (100 * 15_000, 1500 * 60_000, 0, 0)
    assert_consistent(cost)


def test_o3_price_depends_on_request_time(book: PriceBook) -> None:
    usage = Usage(
        prompt_tokens=10_000, completion_tokens=2_000, cached_tokens=4_000, reasoning_tokens=1_500
    )
    after = book.cost(provider="openai", model="o3", usage=usage, at=AFTER_O3_CUT)
    # o3 since 2025-06-10: $2.00 input, $0.50 cached input, $8.00 output
    assert parts(after) == (6_000 * 2_000, 2_000 * 8_000, 4_000 * 500, 0)
    assert after.price_ref == "openai/o3 (genai-prices 0.2.3); price from 2025-06-10"
    before = book.cost(provider="openai", model="o3", usage=usage, at=BEFORE_O3_CUT)
    # o3 at launch: $10.00 input, $0.50 cached input, $40.00 output
    assert parts(before) == (6_000 * 10_000, 2_000 * 40_000, 4_000 * 500, 0)


# --- Anthropic --------------------------------------------------------------------------


def test_claude_3_5_sonnet_with_cache_read_and_write(book: PriceBook) -> None:
    # Anthropic reports input 100, cache_creation 2000, cache_read 3000; normalised prompt = 5100
    usage = Usage(
        prompt_tokens=5100, completion_tokens=400, cached_tokens=3000, cache_write_tokens=2000
    )
    cost = book.cost(provider="anthropic", model="claude-3-5-sonnet-20241022", usage=usage)
    # Claude 3.5 Sonnet: $3 input, $3.75 5-minute cache write, $0.30 cache read, $15 output
    assert parts(cost) == (100 * 3_000, 400 * 15_000, 3000 * 300, 2000 * 3_750)
    assert cost.total_nusd == 300_000 + 6_000_000 + 900_000 + 7_500_000
    assert cost.price_ref == "anthropic/claude-3-5-sonnet (genai-prices 0.2.3)"
    assert_consistent(cost)


def test_claude_sonnet_4_same_prices(book: PriceBook) -> None:
    usage = Usage(
        prompt_tokens=5100, completion_tokens=400, cached_tokens=3000, cache_write_tokens=2000
    )
    cost = book.cost(provider="anthropic", model="claude-sonnet-4-20250514", usage=usage)
    assert cost.total_nusd == 100 * 3_000 + 400 * 15_000 + 3000 * 300 + 2000 * 3_750
    assert cost.price_ref == "anthropic/claude-sonnet-4-0 (genai-prices 0.2.3)"


def test_claude_sonnet_4_5_long_context_tier(book: PriceBook) -> None:
    usage = Usage(prompt_tokens=250_000, completion_tokens=1_000, cached_tokens=50_000)
    cost = book.cost(provider="anthropic", model="claude-sonnet-4-5-20250929", usage=usage)
    # Sonnet 4.5 above 200K input tokens: $6 input, $0.60 cache read, $22.50 output
    assert parts(cost) == (200_000 * 6_000, 1_000 * 22_500, 50_000 * 600, 0)
    assert cost.price_ref is not None and cost.price_ref.endswith("tier above 200000 input tokens")


# --- Google ---------------------------------------------------------------------------


def test_gemini_2_5_pro_base_and_long_context(book: PriceBook) -> None:
    short = Usage(prompt_tokens=200_000, completion_tokens=2_000)  # exactly 200K: base price
    cost = book.cost(provider="gemini", model="gemini-2.5-pro", usage=short)
    # Gemini 2.5 Pro, prompts <= 200K: $1.25 input, $10 output
    assert cost.total_nusd == 200_000 * 1_250 + 2_000 * 10_000
    assert cost.price_ref == "google/gemini-2.5-pro (genai-prices 0.2.3)"
    long = Usage(prompt_tokens=300_000, completion_tokens=2_000, cached_tokens=100_000)
    cost = book.cost(provider="gemini", model="gemini-2.5-pro", usage=long)
    # prompts > 200K: $2.50 input, $0.25 cached input, $15 output
    assert parts(cost) == (200_000 * 2_500, 2_000 * 15_000, 100_000 * 250, 0)


def test_gemini_1_5_pro_above_128k(book: PriceBook) -> None:
    usage = Usage(prompt_tokens=130_000, completion_tokens=100)
    cost = book.cost(provider="gemini", model="models/gemini-1.5-pro-002", usage=usage)
    # Gemini 1.5 Pro, prompts > 128K: $2.50 input, $10 output
    assert cost.total_nusd == 130_000 * 2_500 + 100 * 10_000


# --- Mistral, DeepSeek, others ---------------------------------------------------------


def test_mistral_large(book: PriceBook) -> None:
    usage = Usage(prompt_tokens=1_000, completion_tokens=1_000)
    cost = book.cost(provider="mistral", model="mistral-large-2411", usage=usage)
    # Mistral Large 24.11: $2 input, $6 output
    assert cost.total_nusd == 1_000 * 2_000 + 1_000 * 6_000 == 8_000_000
    assert cost.price_ref == "mistral/mistral-large (genai-prices 0.2.3)"


def test_deepseek_chat_with_cache_hits_peak_and_off_peak(book: PriceBook) -> None:
    usage = Usage(prompt_tokens=10_000, completion_tokens=1_000, cached_tokens=6_000)
    peak = book.cost(provider="deepseek", model="deepseek-chat", usage=usage, at=DEEPSEEK_PEAK)
    # deepseek-chat (V3, early 2025): $0.27 cache miss, $0.07 cache hit, $1.10 output
    assert parts(peak) == (4_000 * 270, 1_000 * 1_100, 6_000 * 70, 0)
    assert peak.price_ref == "deepseek/deepseek-chat (genai-prices 0.2.3); 00:30-16:30 UTC price"
    off = book.cost(provider="deepseek", model="deepseek-chat", usage=usage, at=DEEPSEEK_OFF_PEAK)
    # 16:30-00:30 UTC discount (50 %): $0.135 / $0.035 / $0.55
    assert parts(off) == (4_000 * 135, 1_000 * 550, 6_000 * 35, 0)


def test_other_cloud_providers_map_to_genai_ids(book: PriceBook) -> None:
    usage = Usage(prompt_tokens=1_000, completion_tokens=1_000)
    # xAI grok-3: $3 / $15; Groq llama-3.3-70b-versatile: $0.59 / $0.79
    assert (
        book.cost(provider="xai", model="grok-3", usage=usage).total_nusd == 3_000_000 + 15_000_000
    )
    groq = book.cost(provider="groq", model="llama-3.3-70b-versatile", usage=usage)
    assert groq.total_nusd == 590_000 + 790_000
    azure = book.cost(provider="azure", model="gpt-4o-2024-08-06", usage=usage)
    assert azure.total_nusd == 2_500_000 + 10_000_000


def test_openrouter_names(book: PriceBook) -> None:
    usage = Usage(prompt_tokens=1_000, completion_tokens=1_000)
    routed = book.cost(
        provider="openrouter", model="openai/gpt-4o-2024-08-06", usage=usage, at=AFTER_O3_CUT
    )
    assert routed.total_nusd == 2_500_000 + 10_000_000
    assert routed.price_ref == "openrouter/openai/gpt-4o (genai-prices 0.2.3)"
    # not in genai-prices' OpenRouter list: falls back to the vendor's own price
    grok = book.cost(provider="openrouter", model="x-ai/grok-3", usage=usage)
    assert grok.price_ref == "x-ai/grok-3 (genai-prices 0.2.3)"


def test_unknown_provider_matches_model_name_across_providers(book: PriceBook) -> None:
    usage = Usage(prompt_tokens=1_000, completion_tokens=1_000)
    cost = book.cost(provider="my-litellm", model="claude-3-5-sonnet-20241022", usage=usage)
    assert cost.price_ref == "anthropic/claude-3-5-sonnet (genai-prices 0.2.3)"
    prefixed = book.cost(provider="my-litellm", model="someproxy/gpt-4o", usage=usage)
    assert prefixed.price_ref == "openai/gpt-4o (genai-prices 0.2.3)"


# --- unknown, overrides, local, GPU-hour -----------------------------------------------


def test_unknown_model_is_null_not_zero(book: PriceBook) -> None:
    cost = book.cost(provider="openai", model="gpt-nonexistent-9", usage=Usage(10, 10))
    assert cost == Cost(False, None, None, None, None, None, None, None)
    assert not book.is_priced("openai", "gpt-nonexistent-9")
    assert book.is_priced("openai", "gpt-4o")
    assert not book.cost(provider="openai", model=None, usage=Usage(10, 10)).known


def test_model_priced_in_other_units_is_unknown_and_explained(book: PriceBook) -> None:
    cost = book.cost(provider="openai", model="whisper-1", usage=Usage(10, 10))
    assert not cost.known and cost.total_nusd is None
    assert cost.price_ref == "openai/whisper-1 (genai-prices 0.2.3): not priced per token"


def test_missing_usage_is_unknown(book: PriceBook) -> None:
    cost = book.cost(provider="openai", model="gpt-4o", usage=Usage(None, None))
    assert not cost.known and cost.total_nusd is None
    embedding = book.cost(
        provider="openai", model="text-embedding-3-small", usage=Usage(1000, None)
    )
    assert embedding.total_nusd == 1000 * 20  # $0.02 input; no output tokens


def test_override_exact_glob_and_provider_filter() -> None:
    book = PriceBook(
        overrides=[
            PriceOverride(model="acme-*", input_per_mtok=1, output_per_mtok=2),
            PriceOverride(model="acme-large", input_per_mtok=Decimal("3.5"), output_per_mtok=7),
            {"model": "gpt-4o", "provider": "anthropic", "input_per_mtok": 100},
        ]
    )
    usage = Usage(prompt_tokens=1_000, completion_tokens=1_000)
    large = book.cost(provider="vllm-cloud", model="ACME-Large", usage=usage)
    assert large.total_nusd == 1_000 * 3_500 + 1_000 * 7_000  # the exact name beats the glob
    assert (large.source, large.price_ref) == ("override", "override 'acme-large'")
    small = book.cost(provider="vllm-cloud", model="acme-small", usage=usage)
    assert small.total_nusd == 1_000 * 1_000 + 1_000 * 2_000
    # provider-scoped override does not touch OpenAI's gpt-4o
    assert book.cost(provider="openai", model="gpt-4o", usage=usage).source == "genai-prices"


def test_override_cache_prices_default_to_input_price() -> None:
    book = PriceBook(overrides=[PriceOverride(model="m", input_per_mtok=1, output_per_mtok=2)])
    cost = book.cost(
        provider="x", model="m", usage=Usage(100, 0, cached_tokens=40, cache_write_tokens=10)
    )
    assert parts(cost) == (50 * 1_000, 0, 40 * 1_000, 10 * 1_000)


def test_discount_override_applies_to_database_price() -> None:
    book = PriceBook(overrides=[{"provider": "openai", "model": "gpt-4o*", "discount_percent": 20}])
    usage = Usage(prompt_tokens=1_000, completion_tokens=1_000, cached_tokens=200)
    cost = book.cost(provider="openai", model="gpt-4o-2024-08-06", usage=usage)
    # gpt-4o at 80 %: $2.00 input, $1.00 cached input, $8.00 output
    assert parts(cost) == (800 * 2_000, 1_000 * 8_000, 200 * 1_000, 0)
    assert cost.source == "override"
    assert cost.price_ref == (
        "openai/gpt-4o (genai-prices 0.2.3) -20% (override 'gpt-4o*' on openai)"
    )


def test_fine_tunes_are_overrides() -> None:
    usage = Usage(2_000, 300, cached_tokens=1_024)
    own = "ft:gpt-4.1-nano-2025-04-14:acme::abc123"
    assert not PriceBook().is_priced("openai", own)
    # OpenAI fine-tuned gpt-4.1-nano inference: $0.20 input, $0.05 cached input, $0.80 output
    nano = {"model": "ft:gpt-4.1-nano-*", "input_per_mtok": 0.2}
    nano |= {"cache_read_per_mtok": 0.05, "output_per_mtok": 0.8}
    # genai-prices knows fine-tuned gpt-4o-mini ($0.30 / $1.20) but not its $0.15 cached price
    mini = "ft:gpt-4o-mini-2024-07-18:acme::abc123"
    database = PriceBook().cost(provider="openai", model=mini, usage=usage)
    assert database.total_nusd == 2_000 * 300 + 300 * 1_200  # cached billed at full input
    cached = {"model": "ft:gpt-4o-mini-*", "input_per_mtok": "0.30"}
    cached |= {"cache_read_per_mtok": "0.15", "output_per_mtok": "1.20"}
    book = PriceBook(overrides=[nano, cached])
    assert book.is_priced("openai", own)
    cost = book.cost(provider="openai", model=own, usage=usage)
    assert parts(cost) == (976 * 200, 300 * 800, 1_024 * 50, 0)
    cost = book.cost(provider="openai", model=mini, usage=usage)
    assert parts(cost) == (976 * 300, 300 * 1_200, 1_024 * 150, 0)


def test_override_validation() -> None:
    with pytest.raises(ValueError, match="unknown PriceOverride keys: input_price"):
        PriceOverride.from_dict({"model": "m", "input_price": 1})
    with pytest.raises(ValueError, match="not both"):
        PriceOverride(model="m", input_per_mtok=1, discount_percent=10)
    with pytest.raises(ValueError, match="not both"):
        PriceOverride(model="m")
    with pytest.raises(ValueError, match="negative"):
        PriceOverride(model="m", output_per_mtok=-1)
    with pytest.raises(ValueError, match="<= 100"):
        PriceOverride(model="m", discount_percent=150)
    with pytest.raises(ValueError, match="not a finite price"):
        GpuHourPrice.from_dict({"upstream": "gpu", "usd_per_hour": "cheap"})


def test_ollama_is_local_and_free(book: PriceBook) -> None:
    usage = Usage(prompt_tokens=5_000, completion_tokens=800)
    # "deepseek-r1:8b" would name-match DeepSeek's cloud price; on Ollama it is local
    for provider, model, upstream in [
        ("ollama", "deepseek-r1:8b", None),
        ("ollama", "llama3.1:8b", None),
        ("openai", "gpt-oss:20b", "ollama"),
    ]:
        cost = book.cost(provider=provider, model=model, usage=usage, upstream=upstream)
        assert cost.known and cost.source == "local"
        assert (cost.total_nusd, *parts(cost)) == (0, 0, 0, 0, 0)
    assert book.is_priced("ollama", "anything")


def test_gpu_hour_price_uses_latency() -> None:
    book = PriceBook(gpu_hours=[GpuHourPrice(upstream="vllm", usd_per_hour=2.5)])
    usage = Usage(prompt_tokens=5_000, completion_tokens=800)
    # a cloud model name on a GPU-hour upstream is still GPU time, not OpenAI's price
    cost = book.cost(
        provider="openai", model="gpt-4o", upstream="vllm", usage=usage, latency_ms=1500.0
    )
    # $2.50/h x 1.5 s = 2.5e9 nUSD x 1500 / 3_600_000 = 1_041_666.67 -> 1_041_667
    assert cost.total_nusd == round_div(2_500_000_000 * 1_500, 3_600_000) == 1_041_667
    assert parts(cost) == (0, 1_041_667, 0, 0)
    assert (cost.source, cost.price_ref) == (
        "gpu-hour",
        "gpu-hour vllm at $2.5/h for 1500 ms latency",
    )
    fallback = book.cost(provider="vllm", model="qwen", usage=usage, generation_ms=720.0)
    assert fallback.total_nusd == 2_500_000_000 * 720 // 3_600_000 == 500_000
    assert fallback.price_ref == "gpu-hour vllm at $2.5/h for 720 ms generation"
    no_time = book.cost(provider="vllm", model="qwen", usage=usage)
    assert not no_time.known and no_time.source == "gpu-hour"


def test_gpu_hour_price_from_settings_dict() -> None:
    book = PriceBook(gpu_hours=[{"upstream": "LlamaCpp", "usd_per_hour": 0.9}])
    cost = book.cost(provider="llamacpp", model="x", usage=Usage(1, 1), latency_ms=4000.0)
    assert cost.total_nusd == 900_000_000 * 4_000 // 3_600_000 == 1_000_000


# --- money rules ------------------------------------------------------------------------


def test_round_half_even() -> None:
    assert [round_div(n, 2) for n in (1, 3, 5, 7)] == [0, 2, 2, 4]
    assert round_div(7, 3) == 2 and round_div(8, 3) == 3
    # $0.0025 / 1M tokens = 2.5 nUSD per token: 1 -> 2.5 -> 2, 3 -> 7.5 -> 8, 5 -> 12.5 -> 12
    book = PriceBook(overrides=[PriceOverride(model="tiny", input_per_mtok="0.0025")])
    totals = [
        book.cost(provider="x", model="tiny", usage=Usage(n, 0)).total_nusd for n in (1, 3, 5)
    ]
    assert totals == [2, 8, 12]


def test_total_is_sum_of_rounded_parts() -> None:
    # each part rounds separately: 1 token at 2.5 nUSD in each of input/cache-read/cache-write
    book = PriceBook(
        overrides=[PriceOverride(model="tiny", input_per_mtok="0.0025", output_per_mtok="0.0015")]
    )
    cost = book.cost(
        provider="x", model="tiny", usage=Usage(3, 1, cached_tokens=1, cache_write_tokens=1)
    )
    assert parts(cost) == (2, 2, 2, 2)  # 2.5 -> 2 three times, 1.5 -> 2
    assert cost.total_nusd == 8
    assert_consistent(cost)


@pytest.mark.parametrize(
    ("provider", "model"),
    [
        ("openai", "gpt-4o"),
        ("openai", "o3"),
        ("anthropic", "claude-3-5-haiku-20241022"),
        ("anthropic", "claude-sonnet-4-5"),
        ("google", "gemini-2.5-pro"),
        ("google", "gemini-2.5-flash"),
        ("deepseek", "deepseek-chat"),
        ("mistral", "codestral-2508"),
        ("x-ai", "grok-4.20"),
    ],
)
def test_agrees_with_genai_prices_calc_price(book: PriceBook, provider: str, model: str) -> None:
    """Our Usage maps onto theirs: their input_tokens also include cache reads and writes."""
    for usage in (Usage(1_234, 567, 300, 0), Usage(250_001, 33, 1_000, 2_000, 10), Usage(7, 1)):
        ours = book.cost(provider=provider, model=model, usage=usage, at=AFTER_O3_CUT)
        theirs = calc_price(
            GenaiUsage(
                input_tokens=usage.prompt_tokens,
                cache_read_tokens=usage.cached_tokens,
                cache_write_tokens=usage.cache_write_tokens,
                output_tokens=usage.completion_tokens,
            ),
            model,
            provider_id=provider,
            genai_request_timestamp=AFTER_O3_CUT,
        )
        assert ours.total_nusd is not None
        assert abs(ours.total_nusd - theirs.total_price * 1_000_000_000) <= 2  # 4 roundings
        assert_consistent(ours)


def test_no_float_leaks_anywhere(book: PriceBook) -> None:
    assert set(Cost._fields) >= {"total_nusd", "input_nusd"}
    for provider, model in [
        ("openai", "gpt-4o-mini"),
        ("deepseek", "deepseek-chat"),
        ("ollama", "x"),
    ]:
        assert_consistent(book.cost(provider=provider, model=model, usage=Usage(333, 77, 11, 5, 3)))


def test_lru_cache_evicts_and_still_answers() -> None:
    book = PriceBook(cache_size=2)
    usage = Usage(1_000, 1_000)
    first = book.cost(provider="openai", model="gpt-4o", usage=usage)
    for model in ("gpt-4o-mini", "o1", "gpt-4.1"):
        book.cost(provider="openai", model=model, usage=usage)
    assert len(book._plans) == 2
    assert book.cost(provider="openai", model="gpt-4o", usage=usage) == first


def test_prices_are_computed_without_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("pricing tried to use the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    catalog.bundled_providers.cache_clear()  # reload the bundled data under the guard
    book = PriceBook()
    cost = book.cost(provider="anthropic", model="claude-3-5-sonnet-latest", usage=Usage(10, 10))
    assert cost.known and cost.total_nusd == 10 * 3_000 + 10 * 15_000
    assert book.cost(provider="openrouter", model="openai/gpt-4o", usage=Usage(1, 1)).known
