"""Resources: the hoop API and the local data (raw files, lake, DuckDB warehouse).

Both translate into the library's ``Settings``. A field left unset (``None``) takes the value of
the environment variable named in its description, else the library's default, exactly as the
command line does; settings no resource exposes (nightly horizon, rolling window, retry budget,
CA bundle, ...) always come from the environment. The definitions leave ``HoopApiResource.url``
and ``token`` unset, so the run reads ``HOOP_API_URL`` and ``HOOP_API_TOKEN`` from its own
environment when it starts: Dagster records neither the value nor a binding in run records and job
snapshots, and a missing variable fails the run with one line that says what to set (a binding
through ``EnvVar`` made Dagster fail the run config with a traceback before any of this code ran).
A deployment may still set them on the resource, the token through ``EnvVar`` only.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from dagster import ConfigurableResource
from pydantic import Field

from hoop_sessions.config import Secret, Settings


def _given(**values: Any) -> dict[str, Any]:
    return {name: value for name, value in values.items() if value is not None}


# A resource that is its own value, as Dagster writes them: parametrizing the pydantic base
# (ConfigurableResource["WarehouseResource"]) would make a new model class at run time.
class WarehouseResource(ConfigurableResource):  # type: ignore[type-arg]
    """Where the raw files, the Parquet lake and ``warehouse.duckdb`` live."""

    data_dir: str | None = Field(
        default=None,
        description="Holds raw/, lake/ and warehouse.duckdb. Unset: HOOP_DATA_DIR or ./data.",
    )
    lock_timeout_seconds: float | None = Field(
        default=None,
        description="How long a load waits for another process to let go of the DuckDB file. "
        "Unset: HOOP_WAREHOUSE_LOCK_TIMEOUT or 300.",
    )

    def settings(self) -> Settings:
        """Library settings for local work: no API URL or token, whatever the environment holds."""
        overrides = _given(
            data_dir=Path(self.data_dir) if self.data_dir else None,
            lock_timeout_seconds=self.lock_timeout_seconds,
        )
        return Settings.from_env(**overrides, api_url=None, api_token=None)


# A resource that is its own value, as Dagster writes them: parametrizing the pydantic base
# (ConfigurableResource["HoopApiResource"]) would make a new model class at run time.
class HoopApiResource(ConfigurableResource):  # type: ignore[type-arg]
    """The hoop gateway: base URL, token and how hard to call it."""

    url: str | None = Field(
        default=None,
        description="Gateway base URL, e.g. https://use.hoop.dev. Unset: HOOP_API_URL at run time.",
    )
    token: str | None = Field(
        default=None,
        description="API token. Unset: HOOP_API_TOKEN at run time. If set, bind it with "
        "EnvVar('HOOP_API_TOKEN'), never a literal.",
    )
    auth_header: str | None = Field(
        default=None,
        description="'bearer' (Authorization: Bearer) or 'api-key' (legacy Api-Key header). "
        "Unset: HOOP_API_AUTH_HEADER or bearer.",
    )
    concurrency: int | None = Field(
        default=None, description="Session gets in flight at once. Unset: HOOP_CONCURRENCY or 8."
    )
    timeout_seconds: float | None = Field(
        default=None, description="Per-request timeout. Unset: HOOP_TIMEOUT_SECONDS or 60."
    )
    retry_attempts: int | None = Field(
        default=None, description="Attempts per request. Unset: HOOP_RETRY_ATTEMPTS or 6."
    )
    allow_partial_visibility: bool | None = Field(
        default=None,
        description="Sync with a token that sees only part of the organization. "
        "Unset: HOOP_ALLOW_PARTIAL_VISIBILITY or false.",
    )

    def apply(self, settings: Settings) -> Settings:
        """``settings`` pointed at this gateway, validated (ConfigError says what to set)."""
        overrides = _given(
            auth_header=self.auth_header.strip().lower() if self.auth_header else None,
            concurrency=self.concurrency,
            timeout_seconds=self.timeout_seconds,
            retry_attempts=self.retry_attempts,
            allow_partial_visibility=self.allow_partial_visibility,
        )
        environment = Settings.from_env()
        configured = replace(
            settings,
            api_url=self.url or environment.api_url,
            api_token=Secret(self.token) if self.token else environment.api_token,
            **overrides,
        )
        configured.require_api()
        return configured


def resources_from_env() -> dict[str, HoopApiResource | WarehouseResource]:
    """The resources of the code location, bound to the environment variables of the contract."""
    return {
        "hoop_api": HoopApiResource(),
        "warehouse": WarehouseResource(),
    }
