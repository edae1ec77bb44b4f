"""The settings of chat, analyze and retrain (estate/serving/settings.py has the table of
every variable, the base class and what predict, explain and the body guard read).

Apart from settings.py so that a predict or explain instance does not build these
classes at its cold start (~2.5 ms: pydantic collects each class's fields at import).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import Field, SecretStr

from estate.serving.settings import (
    EndpointSettings,
    GuardSettings,
    PredLogSettings,
    ServingSettings,
    StoreSettings,
    _AnalyzeBody,
    _ChatBody,
    _Env,
)

if TYPE_CHECKING:
    from estate.runtime.deal import DealDefaults


class DealSettings(_Env):
    """The deal assumptions chat and analyze share: one variable each, so the two
    functions work a deal out on the same defaults (`estate.runtime.deal`)."""

    deal_price_to_rent: float = Field(15.0, gt=0)
    deal_down_payment: float = Field(0.20, ge=0, le=1)
    deal_rate: float = Field(0.065, ge=0, le=0.5)
    deal_term_years: int = Field(30, ge=1, le=50)
    deal_tax_rate: float = Field(0.015, ge=0, le=0.2)
    deal_insurance_rate: float = Field(0.005, ge=0, le=0.2)
    deal_vacancy: float = Field(0.05, ge=0, lt=1)
    deal_maintenance: float = Field(0.08, ge=0, lt=1)

    def deal_defaults(self) -> DealDefaults:
        from estate.runtime.deal import DealDefaults  # chat's and analyze's, not predict's

        return DealDefaults(
            price_to_rent=self.deal_price_to_rent,
            down_payment=self.deal_down_payment,
            rate=self.deal_rate,
            term_years=self.deal_term_years,
            tax_rate=self.deal_tax_rate,
            insurance_rate=self.deal_insurance_rate,
            vacancy=self.deal_vacancy,
            maintenance=self.deal_maintenance,
        )


class ChatSettings(EndpointSettings, _ChatBody, DealSettings):
    """chat (estate/serving/chat/entry.py): limits, deal assumptions, optional LLM."""

    chat_max_messages: int = Field(40, ge=1)
    chat_max_message_chars: int = Field(4000, ge=1)
    llm_base_url: str | None = None
    llm_model: str = "llama-3.3-70b-versatile"
    llm_api_key: SecretStr | None = None
    llm_api_key_secret: str | None = None
    secret_manager_endpoint: str | None = None
    llm_timeout_seconds: float = Field(20.0, gt=0)
    llm_max_retries: int = Field(1, ge=0, le=5)
    llm_max_tool_rounds: int = Field(4, ge=1, le=10)
    # One deadline for the whole exchange, below the gateway's 60 s for chat
    # (infra/openapi.yaml) and chat's 120 s function timeout (infra/variables.tf), with
    # room left for the local engine's answer: retries x rounds x timeout could be 160 s.
    llm_deadline_seconds: float = Field(45.0, gt=0, le=3600)
    llm_max_response_bytes: int = Field(1_000_000, ge=1024)
    llm_max_tool_calls: int = Field(8, ge=1, le=64)


class AnalyzeSettings(EndpointSettings, _AnalyzeBody, DealSettings, PredLogSettings):
    """analyze (estate/serving/analyze.py): one property + deal terms per request."""


class RetrainSettings(StoreSettings):
    """retrain: the Vertex AI job a new data file starts."""

    retrain_project: str | None = None
    retrain_region: str = "us-central1"
    retrain_prefix: str = "incoming/"
    retrain_config: str = "configs/ames.toml"
    retrain_output: str | None = Field(None, description="Default: `artifacts`.")
    retrain_staging: str | None = None
    retrain_image: str | None = None
    retrain_service_account: str | None = None
    retrain_machine_type: str = "n1-standard-4"
    vertex_endpoint: str | None = None


#: Every function's settings: the variables this source reads (README, infra/functions.tf).
FUNCTION_SETTINGS: tuple[type[_Env], ...] = (
    ServingSettings,
    ChatSettings,
    AnalyzeSettings,
    RetrainSettings,
    GuardSettings,
)
