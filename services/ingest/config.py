from __future__ import annotations

from pydantic import Field, SecretStr, field_validator

from services.common.auth import strong_dev_keys
from services.common.settings import ServiceSettings


class IngestSettings(ServiceSettings):
    metrics_port: int = Field(default=9101, ge=0, le=65535)
    http_host: str = "127.0.0.1"
    http_port: int = Field(default=8080, ge=0, le=65535)
    sources_file: str = Field(
        default="",
        description="TOML file of [[sources]]: name, key_sha256, kinds, rate_per_second, burst, "
        "hl7_senders, read. See `wardflow keys new`.",
    )
    api_keys: dict[str, SecretStr] = Field(
        default_factory=dict,
        description="Development only: source name -> plain API key, as JSON "
        'WARDFLOW_API_KEYS=\'{"bedside-gateway": "<key>"}\'. These sources may send every kind '
        "and any HL7 sender. Production uses `sources_file` (hashed keys, allowed kinds).",
    )
    pseudonym_key: SecretStr = Field(
        default=SecretStr(""),
        description="Secret for the keyed pseudonym (HMAC-SHA256) of patient identifiers; at "
        "least 32 characters. Keep it stable: changing it changes every patient key downstream.",
    )
    max_body_bytes: int = Field(default=1_048_576, ge=1_024)
    max_events_per_request: int = Field(default=500, ge=1)
    default_rate_per_second: float = Field(default=2_000.0, gt=0)
    default_burst: float = Field(default=4_000.0, gt=0)
    idempotency_window_seconds: float = Field(
        default=86_400.0, gt=0, description="How long a repeated event id / key is recognised."
    )
    idempotency_max_entries: int = Field(default=500_000, ge=1)
    broker_timeout_seconds: float = Field(
        default=5.0, gt=0, description="How long to wait for the broker before answering 503."
    )
    mllp_host: str = "127.0.0.1"
    mllp_port: int = Field(default=2575, ge=0, le=65535, description="0 disables MLLP.")
    mllp_tls_cert: str = Field(default="", description="PEM certificate: MLLP over TLS when set.")
    mllp_tls_key: str = ""
    hl7_timezone: str = Field(
        default="UTC", description="IANA zone for HL7 timestamps that carry no offset."
    )

    @field_validator("api_keys")
    @classmethod
    def _keys_are_strong(cls, keys: dict[str, SecretStr]) -> dict[str, SecretStr]:
        return strong_dev_keys(keys)

    @field_validator("pseudonym_key")
    @classmethod
    def _pseudonym_key_is_strong(cls, key: SecretStr) -> SecretStr:
        if 0 < len(key.get_secret_value()) < 32:
            raise ValueError("must be at least 32 characters")
        return key

    @field_validator("hl7_timezone")
    @classmethod
    def _known_zone(cls, zone: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(zone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {zone!r}") from None
        return zone
