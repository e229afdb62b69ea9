"""S3 Standard storage prices (USD per GB-month, first 50 TB tier; AWS list prices, late 2026), by region.

A small shipped table: ``--price-gb-month`` or REGVAULT_S3_PRICE_GB_MONTH overrides it, and a region not
in the table falls back to us-east-1's price with a note saying so.
"""

from __future__ import annotations

from regvault.errors import InvalidInput

STANDARD_GB_MONTH = {
    "us-east-1": 0.023,
    "us-east-2": 0.023,
    "us-west-1": 0.026,
    "us-west-2": 0.023,
    "ca-central-1": 0.025,
    "eu-west-1": 0.023,
    "eu-west-2": 0.024,
    "eu-west-3": 0.024,
    "eu-central-1": 0.0245,
    "eu-north-1": 0.023,
    "ap-south-1": 0.025,
    "ap-northeast-1": 0.025,
    "ap-northeast-2": 0.025,
    "ap-southeast-1": 0.025,
    "ap-southeast-2": 0.025,
    "sa-east-1": 0.0405,
}
GB = 1024**3


def price_for(region: str | None, override: float | None) -> tuple[float, str]:
    """(USD per GB-month, where the price comes from)."""
    if override is not None:
        if not 0 <= override < 10:
            raise InvalidInput("the price per GB-month must be between 0 and 10 USD")
        return override, "given"
    region = region or "us-east-1"
    if region in STANDARD_GB_MONTH:
        return STANDARD_GB_MONTH[region], f"S3 Standard, {region}"
    return STANDARD_GB_MONTH["us-east-1"], f"S3 Standard, us-east-1 (no price shipped for {region})"


def monthly(size: int, price: float) -> float:
    return round(size / GB * price, 4)
