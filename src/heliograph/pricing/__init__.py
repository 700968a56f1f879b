"""Cost computation and offline token counting for recorded requests.

``PriceBook.cost`` turns a request's token usage into an exact, explained cost in integer
nano-USD from genai-prices' bundled data (never fetched at run time), user overrides and
GPU-hour prices; ``heliograph.pricing.tokens`` estimates token counts when a response
carries none.
"""

from heliograph.pricing.book import DEFAULT_LOCAL_PROVIDERS, PriceBook
from heliograph.pricing.catalog import PROVIDER_IDS
from heliograph.pricing.cost import Cost, Usage
from heliograph.pricing.overrides import GpuHourPrice, PriceOverride

__all__ = [
    "DEFAULT_LOCAL_PROVIDERS",
    "PROVIDER_IDS",
    "Cost",
    "GpuHourPrice",
    "PriceBook",
    "PriceOverride",
    "Usage",
]
