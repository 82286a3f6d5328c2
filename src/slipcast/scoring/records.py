"""What a forecast is: the records scoring produces, which the API answers with and the ledger
records. Times carry a UTC offset."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, GetCoreSchemaHandler, GetJsonSchemaHandler
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import core_schema

from slipcast.core.contracts import EARLIEST, LATEST, YEARS
from slipcast.core.vocabulary import Basis, Direction, ForecastStatus


class _Time:
    """A time in a request: an ISO-8601 string with a UTC offset, in ``contracts.YEARS``. Checked
    in pydantic's core as one chain (a string, then an aware datetime within the bounds): with a
    Python check per time, times were most of a batch's validation."""

    @classmethod
    def __get_pydantic_core_schema__(cls, source, handler: GetCoreSchemaHandler) -> core_schema.CoreSchema:
        text = core_schema.custom_error_schema(  # a string (or, from Python, a datetime), never a number
            core_schema.union_schema([core_schema.str_schema(strict=True), core_schema.datetime_schema(strict=True)]),
            "time_not_text", custom_error_message="a time is an ISO-8601 string with a UTC offset, not a number")
        return core_schema.chain_schema([text, core_schema.datetime_schema(tz_constraint="aware", ge=EARLIEST,
                                                                           lt=LATEST)])

    @classmethod
    def __get_pydantic_json_schema__(cls, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
                                     ) -> JsonSchemaValue:
        return {"type": "string", "format": "date-time", "description": f"With a UTC offset, in {YEARS}."}


When = Annotated[datetime, _Time]


class Record(BaseModel):
    """A record whose vocabulary fields hold the words themselves (plain strings), as stored."""

    model_config = ConfigDict(use_enum_values=True)


class Driver(Record):
    feature: str
    value: float | str | None
    reference: float | str | None = Field(description="Typical value in the training data.")
    effect: float = Field(description="Probability with this value minus with the typical value.")
    direction: Direction


class Factor(Record):
    """A factor a program manager recognises (docs/features.md, "Factors") and how much it moves
    this forecast, with its features' effects under it."""

    factor: str
    effect: float = Field(description="Probability with this milestone's values minus with all of the factor's "
                                      "features at the typical milestone's values.")
    direction: Direction
    sentence: str = Field(description="The factor in words, with the numbers.")
    drivers: list[Driver] = Field(description="Its features' effects, each (with its twin: counts and points "
                                              "together) set to typical alone.")


class ModelRef(Record):
    name: str
    version: str
    run_id: str | None
    candidate: str | None
    source: Literal["registry", "export"]


class Forecast(Record):
    milestone_id: str
    as_of: When
    status: ForecastStatus
    probability: float | None = Field(
        description="Probability the milestone slips; null when insufficient history, past due or withheld.")
    basis: Basis | None = Field(
        default=None, description="What the probability comes from: the model, or the base rate where the "
                                  "model does not beat it at this horizon in its backtest (message says why); "
                                  "withheld where neither was calibrated and skilful there, tested forward.")
    risk_band: str | None
    message: str | None = None
    drivers: list[Driver] = Field(default_factory=list)
    factors: list[Factor] = Field(
        default_factory=list, description="The factors that move the forecast, largest first; their effects plus "
                                          "`remainder` add up to probability minus `typical_probability`.")
    reason: str | None = Field(default=None, description="The factors that move the forecast, in words.")
    typical_probability: float | None = Field(
        default=None, description="The model's probability for the typical milestone of its training data.")
    remainder: float | None = Field(
        default=None, description="What the factors, each set to typical alone, leave of the difference from the "
                                  "typical milestone (their interaction).")
    features: dict[str, float | str | None] = Field(default_factory=dict)
    model: ModelRef


class TicketForecast(Record):
    ticket_id: str
    probability: float | None = Field(description="Null where the forecast is withheld (``reason`` says why).")
    basis: Basis | None = Field(
        default=None, description="The ticket model, or the base rate where the ticket model does not beat "
                                  "it at this horizon in its backtest (the skill guard), or withheld where "
                                  "neither was calibrated there, tested forward.")
    reason: str | None = Field(default=None, description="Why the forecast is withheld.")
