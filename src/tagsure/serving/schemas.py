"""The JSON the server reads and writes, as typed models (Hugging Face's token-classification
conventions: ``inputs`` and ``parameters`` in, ``entity_group``/``score``/``word``/``start``/
``end`` out)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class Parameters(BaseModel):
    model_config = ConfigDict(extra="forbid")

    is_split_into_words: bool = Field(
        False, description="inputs are pre-tokenised: a list of words, or a list of such lists"
    )
    return_tokens: bool = Field(False, description="add tokens, their offsets and tags")


class PredictRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    inputs: str | list[str] | list[list[str]] = Field(
        description="a text, a list of texts, or (is_split_into_words) words or lists of words"
    )
    parameters: Parameters = Field(default_factory=Parameters)


class EntityOut(BaseModel):
    entity_group: str
    score: float | None = Field(description="mean marginal probability; null under ONNX")
    word: str = Field(description="the text of the entity: input[start:end]")
    start: int = Field(description="character offset into the input")
    end: int = Field(description="exclusive")


class PredictionOut(BaseModel):
    """One input's result with ``return_tokens``."""

    entities: list[EntityOut]
    tokens: list[str]
    offsets: list[tuple[int, int]]
    tags: list[str]


# A single input gets its result, a list of inputs a list of results (as Hugging Face answers).
PredictResponse = list[EntityOut] | list[list[EntityOut]] | PredictionOut | list[PredictionOut]


class ErrorOut(BaseModel):
    error: str
    error_type: str


class Status(BaseModel):
    status: str
