from __future__ import annotations

from pydantic import Field, SecretStr, field_validator

from services.common.settings import ServiceSettings


class IngestSettings(ServiceSettings):
    metrics_port: int = Field(default=9101, ge=0, le=65535)
    http_host: str = "127.0.0.1"
    http_port: int = Field(default=8080, ge=0, le=65535)
    api_keys: dict[str, SecretStr] = Field(
        default_factory=dict,
        description="Source name -> API key, as JSON: "
        'WARDFLOW_API_KEYS=\'{"bedside-gateway": "<key>"}\'. A request authenticates with '
        "`Authorization: Bearer <key>` and its events carry that source name.",
    )
    max_body_bytes: int = Field(default=1_048_576, ge=1_024)
    max_events_per_request: int = Field(default=500, ge=1)
    broker_timeout_seconds: float = Field(
        default=5.0, gt=0, description="How long to wait for the broker before answering 503."
    )

    @field_validator("api_keys")
    @classmethod
    def _keys_are_strong(cls, keys: dict[str, SecretStr]) -> dict[str, SecretStr]:
        weak = sorted(source for source, key in keys.items() if len(key.get_secret_value()) < 16)
        if weak:
            raise ValueError(f"API keys must be at least 16 characters; too short for: {weak}")
        return keys
