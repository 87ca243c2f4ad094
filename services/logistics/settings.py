"""logistics' settings for the carriers: the shared secrets their callbacks carry."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from vuonminh.logistics.policy import DEFAULT_PROFILES
from vuonminh.shared.runtime import ServiceRuntime


class CarrierSettings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", populate_by_name=True)

    # GHN documents no signature: the callback URL registered with GHN carries this as `?token=`.
    ghn_callback_token: str | None = Field(default=None, validation_alias="GHN_CALLBACK_TOKEN")
    # GHTK posts to the partner URL with the partner's own secret in `?hash=`.
    ghtk_callback_hash: str | None = Field(default=None, validation_alias="GHTK_CALLBACK_HASH")
    # Viettel Post puts the shared token in the body's `TOKEN`.
    viettelpost_callback_token: str | None = Field(default=None, validation_alias="VIETTELPOST_CALLBACK_TOKEN")
    # VNPost (our documented shape): `Authorization: Bearer <token>`.
    vnpost_callback_token: str | None = Field(default=None, validation_alias="VNPOST_CALLBACK_TOKEN")

    # The carriers' fee tables, limits and capacities (policy.py); the bundled example by default.
    carrier_profiles: Path = Field(default=DEFAULT_PROFILES, validation_alias="VUONMINH_CARRIER_PROFILES")

    def secret_for(self, carrier: str) -> str | None:
        return {
            "ghn": self.ghn_callback_token,
            "ghtk": self.ghtk_callback_hash,
            "viettel_post": self.viettelpost_callback_token,
            "vnpost": self.vnpost_callback_token,
        }.get(carrier)


def carrier_settings(runtime: ServiceRuntime) -> CarrierSettings:
    """The process's carrier settings (from the environment), kept on the runtime; tests may set their own."""
    settings = runtime.state.get("carrier_settings")
    if settings is None:
        settings = runtime.state["carrier_settings"] = CarrierSettings()
    return settings
