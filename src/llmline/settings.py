"""Workspace settings: ``llmline.yaml`` with ``LLMLINE_*`` environment overrides."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from llmline.data.spec import DatasetSpec
from llmline.errors import ConfigError
from llmline.gateway.config import GatewaySettings, UpstreamSettings
from llmline.gateway.deployments.spec import DeploymentSpec
from llmline.guard.policy import GuardPolicy
from llmline.monitoring.config import MonitoringSettings
from llmline.rag.config import RagSettings

if TYPE_CHECKING:
    from llmline.models.gates import Gate

__all__ = ["CONFIG_FILE", "STATE_DIR", "PromotionSettings", "Settings", "read_config_file"]

CONFIG_FILE = "llmline.yaml"
STATE_DIR = ".llmline"

SqlDialect = Literal["bigquery", "duckdb", "postgres"]

# Where the public Stack Overflow dataset lives in BigQuery, mapped to the
# local tables, so SQL written for the real warehouse runs unchanged locally.
DEFAULT_TABLE_MAP = {
    "bigquery-public-data.stackoverflow.posts_questions": "posts_questions",
    "bigquery-public-data.stackoverflow.posts_answers": "posts_answers",
}


class PromotionSettings(BaseModel):
    """What ``llmline models promote`` checks when no ``--gate`` is given.

    Gates read stored evaluations (``llmline eval run``), never numbers typed
    at promotion time, so a promotion is only as good as a recorded result.
    """

    model_config = ConfigDict(extra="forbid")

    gates: list[str] = Field(
        default_factory=lambda: ["rougeL>=base"],
        description="METRIC>=N, METRIC<=N or METRIC>=base[+-N]; every one must pass.",
    )
    dataset: str | None = Field(
        default=None,
        description="Dataset ref whose evaluations the gates read "
        "(default: the dataset the candidate was tuned on).",
    )
    split: str = Field(default="eval", description="Split of that dataset.")

    @field_validator("gates")
    @classmethod
    def _parse_gates(cls, value: list[str]) -> list[str]:
        # Checked when the file loads: a typo must fail `llmline` at once,
        # not at the first promotion (which may run unattended in a pipeline).
        from llmline.models.gates import Gate

        for text in value:
            Gate.parse(text)
        return value

    def parsed_gates(self) -> list[Gate]:
        """The gates as :class:`~llmline.models.gates.Gate` objects."""
        from llmline.models.gates import Gate

        return [Gate.parse(text) for text in self.gates]


class Settings(BaseSettings):
    """Everything a workspace can configure.

    Relative paths in URLs are resolved against the workspace root by
    :meth:`resolved`, so a workspace folder can be moved or cloned.
    """

    model_config = SettingsConfigDict(
        env_prefix="LLMLINE_", env_nested_delimiter="__", extra="forbid"
    )

    metadata_url: str = Field(
        default=f"sqlite:///{STATE_DIR}/metadata.db",
        description="SQLAlchemy URL of the metadata store (SQLite or PostgreSQL).",
    )
    artifact_root: str = Field(
        default=f"{STATE_DIR}/artifacts",
        description="Folder or fsspec URL (s3://, gs://, ...) of the artifact store.",
    )
    warehouse_url: str = Field(
        default=f"duckdb:///{STATE_DIR}/warehouse.duckdb",
        description="duckdb:///PATH, postgresql://..., or bigquery://PROJECT.",
    )
    sql_dialect: SqlDialect = Field(
        default="bigquery", description="Dialect that dataset SQL is written in."
    )
    table_map: dict[str, str] = Field(default_factory=lambda: dict(DEFAULT_TABLE_MAP))
    datasets: dict[str, DatasetSpec] = Field(default_factory=dict)
    promotion: PromotionSettings = Field(default_factory=PromotionSettings)
    gateway: GatewaySettings = Field(default_factory=GatewaySettings)
    upstreams: dict[str, UpstreamSettings] = Field(
        default_factory=dict, description="OpenAI-compatible servers, used as upstream:NAME"
    )
    guard: GuardPolicy = Field(
        default_factory=GuardPolicy, description="Guardrails: scanners and their actions"
    )
    deployments: dict[str, DeploymentSpec] = Field(
        default_factory=dict, description="Declarative deployments, applied by llmline serve"
    )
    monitoring: MonitoringSettings = Field(
        default_factory=MonitoringSettings, description="Tracing, logs, SLOs and alerts"
    )
    rag: RagSettings = Field(default_factory=RagSettings, description="Knowledge bases")

    @field_validator("deployments", mode="before")
    @classmethod
    def _name_deployments(cls, value: Any) -> Any:
        # In the file a deployment's name is its key; the spec carries it too.
        if isinstance(value, dict):
            return {
                name: {**spec, "name": name} if isinstance(spec, dict) else spec
                for name, spec in value.items()
            }
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The file's values arrive as init kwargs; the environment overrides them.
        return (env_settings, init_settings)

    @classmethod
    def load(cls, root: Path) -> Settings:
        """Read ``root/llmline.yaml``, apply env overrides, resolve paths."""
        data = read_config_file(root / CONFIG_FILE)
        try:
            settings = cls(**data)
        except ValidationError as exc:
            raise ConfigError(f"{root / CONFIG_FILE}: {_first_error(exc)}") from None
        return settings.resolved(root)

    def resolved(self, root: Path) -> Settings:
        """Return a copy whose relative paths are anchored at ``root``."""
        return self.model_copy(
            update={
                "metadata_url": _anchor_url(self.metadata_url, "sqlite:///", root),
                "warehouse_url": _anchor_url(self.warehouse_url, "duckdb:///", root),
                "artifact_root": _anchor_path(self.artifact_root, root),
            }
        )


def read_config_file(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path} does not exist") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 ({exc.reason})") from None
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{path}{line}: invalid YAML ({getattr(exc, 'problem', exc)})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    return data


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err["loc"])
    more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    # A validator's own message says what is wrong; pydantic's prefix adds nothing.
    message = str(err["msg"]).removeprefix("Value error, ")
    return f"{where}: {message}{more}"


def _anchor_url(url: str, prefix: str, root: Path) -> str:
    if not url.startswith(prefix):
        return url
    path = url[len(prefix) :]
    if path in ("", ":memory:") or Path(path).is_absolute():
        return url
    return prefix + str((root / path).resolve())


def _anchor_path(path: str, root: Path) -> str:
    if "://" in path or Path(path).is_absolute():
        return path
    return str((root / path).resolve())
