"""Dataset specs: what a ``data build`` extracts, how it cleans, templates and splits."""

from __future__ import annotations

import re
from datetime import date

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = ["DEFAULT_SQL", "CleaningSpec", "DatasetSpec", "FilterSpec", "SplitSpec"]

# A warehouse extraction for tuning, written in BigQuery's dialect against the
# public Stack Overflow dataset: questions joined with their accepted answers,
# filtered by tag and date, bounded by a LIMIT.  It runs unchanged on the
# embedded DuckDB warehouse through sqlglot and the table map.
DEFAULT_SQL_TEMPLATE = """\
SELECT
  q.id AS id,
  CONCAT(q.title, '\\n\\n', q.body) AS question,
  a.body AS answer,
  q.tags AS tags,
  q.creation_date AS creation_date
FROM `bigquery-public-data.stackoverflow.posts_questions` AS q
INNER JOIN `bigquery-public-data.stackoverflow.posts_answers` AS a
  ON q.accepted_answer_id = a.id
WHERE REGEXP_CONTAINS(q.tags, r'{tag}')
  AND q.creation_date >= TIMESTAMP '{since}'
LIMIT {limit}
"""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FilterSpec(_Strict):
    """Parameters of the default SQL: which questions to extract."""

    tag: str = Field(default="python", description="Regular expression matched against tags.")
    since: date = Field(default=date(2000, 1, 1), description="Oldest question date.")
    limit: int = Field(default=50_000, gt=0, description="At most this many rows.")

    @field_validator("tag")
    @classmethod
    def _quotable(cls, value: str) -> str:
        if not value or "'" in value or "\n" in value:
            raise ValueError("tag must be a non-empty pattern without quotes or newlines")
        return value

    def render(self) -> str:
        return DEFAULT_SQL_TEMPLATE.format(
            tag=self.tag, since=self.since.isoformat(), limit=self.limit
        )


DEFAULT_SQL = FilterSpec().render()


class SplitSpec(_Strict):
    """Named fractions that sum to 1, e.g. ``{train: 0.8, eval: 0.2}``."""

    fractions: dict[str, float] = Field(default_factory=lambda: {"train": 0.8, "eval": 0.2})
    seed: int = 42

    @field_validator("fractions")
    @classmethod
    def _sum_to_one(cls, value: dict[str, float]) -> dict[str, float]:
        if not value:
            raise ValueError("at least one split is required")
        bad = [n for n in value if not re.fullmatch(r"[a-z][a-z0-9_-]{0,31}", n)]
        if bad:
            raise ValueError(f"split names must be lower-case words, got {bad}")
        if any(f <= 0 for f in value.values()):
            raise ValueError("split fractions must be positive")
        if abs(sum(value.values()) - 1.0) > 1e-9:
            raise ValueError(f"split fractions must sum to 1, got {sum(value.values()):g}")
        return value


class CleaningSpec(_Strict):
    """Text clean-up, filters and de-duplication applied before templating."""

    html_to_text: bool = True
    min_chars: int = Field(default=10, ge=0)
    max_chars: int = Field(default=8000, gt=0)
    dedup_exact: bool = True
    dedup_near: bool = True
    near_threshold: float = Field(default=0.8, gt=0, le=1)
    scrub_pii: bool = True

    @model_validator(mode="after")
    def _bounds(self) -> CleaningSpec:
        if self.min_chars >= self.max_chars:
            raise ValueError("min_chars must be smaller than max_chars")
        return self


class DatasetSpec(_Strict):
    """One named dataset: SQL, prompt template, columns, cleaning, split."""

    sql: str | None = Field(
        default=None, description="Extraction SQL; default: DEFAULT_SQL shaped by `filters`."
    )
    filters: FilterSpec = Field(default_factory=FilterSpec)
    dialect: str | None = Field(
        default=None, description="Dialect of `sql`; defaults to the workspace's sql_dialect."
    )
    template: str = "stackoverflow-python@production"
    output_column: str = "answer"
    key_column: str = "id"
    cleaning: CleaningSpec = Field(default_factory=CleaningSpec)
    split: SplitSpec = Field(default_factory=SplitSpec)
    description: str = ""

    @model_validator(mode="after")
    def _filters_need_default_sql(self) -> DatasetSpec:
        if self.sql is not None and "filters" in self.model_fields_set:
            raise ValueError("filters shape the default SQL; with your own sql, filter in the SQL")
        return self

    @property
    def query(self) -> str:
        """The SQL this spec runs (in ``dialect``)."""
        return self.sql if self.sql is not None else self.filters.render()

    @property
    def query_dialect(self) -> str | None:
        """Dialect of :attr:`query`: the default SQL is always BigQuery's."""
        return self.dialect if self.sql is not None else (self.dialect or "bigquery")
