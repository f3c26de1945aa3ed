"""Dataset specs: what a ``data build`` extracts, how it cleans, templates and splits."""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = ["DEFAULT_SQL", "CleaningSpec", "DatasetSpec", "SplitSpec"]

# A warehouse extraction for tuning, written in BigQuery's dialect against the
# public Stack Overflow dataset: questions joined with their accepted answers,
# filtered by tag and date, bounded by a LIMIT.  It runs unchanged on the
# embedded DuckDB warehouse through sqlglot and the table map.
DEFAULT_SQL = """\
SELECT
  q.id AS id,
  CONCAT(q.title, '\\n\\n', q.body) AS question,
  a.body AS answer,
  q.tags AS tags,
  q.creation_date AS creation_date
FROM `bigquery-public-data.stackoverflow.posts_questions` AS q
INNER JOIN `bigquery-public-data.stackoverflow.posts_answers` AS a
  ON q.accepted_answer_id = a.id
WHERE REGEXP_CONTAINS(q.tags, r'python')
  AND q.creation_date >= TIMESTAMP '2000-01-01'
LIMIT 50000
"""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


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

    sql: str = DEFAULT_SQL
    dialect: str | None = Field(
        default=None, description="Dialect of `sql`; defaults to the workspace's sql_dialect."
    )
    template: str = "stackoverflow-python@production"
    output_column: str = "answer"
    key_column: str = "id"
    cleaning: CleaningSpec = Field(default_factory=CleaningSpec)
    split: SplitSpec = Field(default_factory=SplitSpec)
    description: str = ""
