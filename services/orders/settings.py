"""orders' settings for the marketplaces: app credentials, API bases and the fetcher's limits.

The `*_API_BASE` settings let any server that speaks a platform's documented API stand in for it
(the marketplace simulator, a sandbox): the client follows the platforms' documented paths, signing
and answers, nothing shared with the simulator.
"""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from vuonminh.shared.runtime import ServiceRuntime


class PlatformSettings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", populate_by_name=True)

    tiktok_shop_app_key: str | None = Field(default=None, validation_alias="TIKTOK_SHOP_APP_KEY")
    tiktok_shop_app_secret: str | None = Field(default=None, validation_alias="TIKTOK_SHOP_APP_SECRET")
    tiktok_shop_api_base: str = Field(
        default="https://open-api.tiktokglobalshop.com", validation_alias="TIKTOK_SHOP_API_BASE"
    )
    # TikTok's token refresh lives on its auth host, not the Open API's.
    tiktok_shop_auth_base: str = Field(
        default="https://auth.tiktok-shops.com", validation_alias="TIKTOK_SHOP_AUTH_BASE"
    )
    shopee_partner_id: int | None = Field(default=None, validation_alias="SHOPEE_PARTNER_ID")
    shopee_partner_key: str | None = Field(default=None, validation_alias="SHOPEE_PARTNER_KEY")
    # The URL Shopee pushes to, exactly as registered: it is part of what Shopee signs.
    shopee_callback_url: str | None = Field(default=None, validation_alias="SHOPEE_CALLBACK_URL")
    shopee_api_base: str = Field(default="https://partner.shopeemobile.com", validation_alias="SHOPEE_API_BASE")
    lazada_app_key: str | None = Field(default=None, validation_alias="LAZADA_APP_KEY")
    lazada_app_secret: str | None = Field(default=None, validation_alias="LAZADA_APP_SECRET")
    # Lazada's base ends in /rest (the path signed is the part after it).
    lazada_api_base: str = Field(default="https://api.lazada.vn/rest", validation_alias="LAZADA_API_BASE")
    lazada_auth_base: str = Field(default="https://auth.lazada.com/rest", validation_alias="LAZADA_AUTH_BASE")

    # -- the fetcher ----------------------------------------------------------------------------------
    api_timeout_s: float = Field(default=5.0, gt=0, validation_alias="VUONMINH_PLATFORM_API_TIMEOUT_S")
    # Attempts of one detail request (5xx, timeouts, throttling) before its notifications go to the retry topic.
    api_attempts: int = Field(default=4, ge=1, validation_alias="VUONMINH_PLATFORM_API_ATTEMPTS")
    api_backoff_initial_s: float = Field(default=0.2, gt=0, validation_alias="VUONMINH_PLATFORM_API_BACKOFF_S")
    api_backoff_max_s: float = Field(default=5.0, gt=0, validation_alias="VUONMINH_PLATFORM_API_BACKOFF_MAX_S")
    # Requests per second per platform and shop; None: the platform's documented limit.
    api_rate_per_s: float | None = Field(default=None, gt=0, validation_alias="VUONMINH_PLATFORM_API_RATE_PER_S")
    # Consecutive failed requests that open a platform's circuit, and how long it stays open.
    breaker_failures: int = Field(default=5, ge=1, validation_alias="VUONMINH_PLATFORM_BREAKER_FAILURES")
    breaker_open_s: float = Field(default=30.0, gt=0, validation_alias="VUONMINH_PLATFORM_BREAKER_OPEN_S")
    # A notification on the retry topic is fetched again this long after its last failure (doubling, capped).
    retry_delay_s: float = Field(default=30.0, ge=0, validation_alias="VUONMINH_NOTIFICATION_RETRY_S")
    retry_delay_max_s: float = Field(default=1800.0, ge=0, validation_alias="VUONMINH_NOTIFICATION_RETRY_MAX_S")
    # Access tokens are refreshed this long before they expire.
    token_refresh_margin_s: float = Field(default=3600.0, ge=0, validation_alias="VUONMINH_TOKEN_REFRESH_MARGIN_S")
    # How often the worker looks for tokens to refresh.
    token_check_s: float = Field(default=60.0, gt=0, validation_alias="VUONMINH_TOKEN_CHECK_S")


def platform_settings(runtime: ServiceRuntime) -> PlatformSettings:
    """The process's platform settings (from the environment), kept on the runtime; tests may set their own."""
    settings = runtime.state.get("platform_settings")
    if settings is None:
        settings = runtime.state["platform_settings"] = PlatformSettings()
    return settings
