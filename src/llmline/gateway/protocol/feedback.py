"""``POST /v1/feedback`` bodies: feedback on a response, by its id."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr

__all__ = ["FeedbackObject", "FeedbackRequest"]


class FeedbackRequest(BaseModel):
    """Ranges and lengths are checked by :mod:`llmline.monitoring.feedback`
    (one set of rules for HTTP, CLI and Python); only the shapes are here.
    Unknown fields are refused so that a misspelt ``rating`` is not
    silently dropped."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(description="The id of the response (chatcmpl-… or cmpl-…)")
    # Any string passes here so that a bad one gets the API's own message.
    rating: StrictInt | StrictStr | None = Field(
        default=None, description="1-5, or thumbs 'up' (stored as 5) / 'down' (stored as 1)"
    )
    comment: str | None = Field(default=None, description="Free text")
    correction: str | None = Field(default=None, description="What the answer should have been")
    user: str | None = Field(default=None, max_length=200, description="The end user, if known")


class FeedbackObject(BaseModel):
    id: str = Field(description="The feedback's id (fb-…)")
    object: Literal["feedback"] = "feedback"
    created: int = Field(description="Unix time it was first stored")
    response_id: str
    rating: int | None
    rating_scale: Literal["5", "thumbs"] | None
    thumbs: Literal["up", "down"] | None
    comment: str | None
    correction: str | None
    user: str | None
    status: Literal["new", "accepted", "rejected"]
