"""Reward functions (versioned JSON per tenant; write scope `ml`, read `app`/`ml`/`rater`), the metric
library, and `POST /v1/rewards/score`: a per-term breakdown of any output(s) under a function.
An unusable definition is a 422 naming the field (`definition.terms[1].weight`)."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, get, post
from litestar.params import Parameter

from services.gateway.auth import requires
from services.gateway.feedback_client import FeedbackClient, metric_list
from services.gateway.keys import Principal
from services.gateway.openapi import error_responses
from services.gateway.routes.admin import SECURITY
from services.gateway.schemas import feedback as s

WRITE = [requires("ml")]
READ = [requires("app", "ml", "rater")]
INVALID = error_responses(422)
FunctionId = Annotated[str, Parameter(max_length=40, description="Reward function id (`rf_...`)")]
PageSize = Annotated[int, Parameter(ge=1, le=200, description="Items per page (1-200)")]
PageToken = Annotated[str, Parameter(max_length=500, description="`next_page_token` of the previous page")]


class RewardFunctionsController(Controller):
    path = "/v1/reward-functions"
    tags = ["rewards"]
    security = SECURITY

    @post("/", operation_id="createRewardFunction", guards=WRITE, responses=INVALID,
          summary="Create a reward function (version 1)")
    async def create(self, feedback: FeedbackClient, principal: Principal, data: s.CreateRewardFunction
                     ) -> s.RewardFunctionOut:
        return await feedback.save_function(principal, "", data.name, data.definition, data.active)

    @get("/", operation_id="listRewardFunctions", guards=READ,
         summary="The tenant's reward functions (latest versions)")
    async def list_functions(self, feedback: FeedbackClient, principal: Principal, page_size: PageSize = 50,
                             page_token: PageToken = "") -> s.RewardFunctionList:
        return await feedback.list_functions(principal, page_size, page_token)

    @get("/{function_id:str}", operation_id="getRewardFunction", guards=READ,
         summary="A reward function's latest version")
    async def get_function(self, feedback: FeedbackClient, principal: Principal, function_id: FunctionId
                           ) -> s.RewardFunctionOut:
        return await feedback.get_function(principal, function_id, 0)

    @post("/{function_id:str}/versions", operation_id="createRewardFunctionVersion", guards=WRITE,
          responses=INVALID, summary="Save a new version (the old ones stay readable)")
    async def new_version(self, feedback: FeedbackClient, principal: Principal, function_id: FunctionId,
                          data: s.NewRewardFunctionVersion) -> s.RewardFunctionOut:
        return await feedback.save_function(principal, function_id, data.name, data.definition, data.active)

    @get("/{function_id:str}/versions", operation_id="listRewardFunctionVersions", guards=READ,
         summary="Every version of a reward function, oldest first")
    async def versions(self, feedback: FeedbackClient, principal: Principal, function_id: FunctionId,
                       page_size: PageSize = 50, page_token: PageToken = "") -> s.RewardFunctionList:
        return await feedback.function_versions(principal, function_id, page_size, page_token)

    @get("/{function_id:str}/versions/{version:int}", operation_id="getRewardFunctionVersion", guards=READ,
         summary="One version of a reward function")
    async def version(self, feedback: FeedbackClient, principal: Principal, function_id: FunctionId,
                      version: Annotated[int, Parameter(ge=1, le=2**31 - 1)]) -> s.RewardFunctionOut:
        return await feedback.get_function(principal, function_id, version)


@get("/v1/reward-metrics", operation_id="listRewardMetrics", tags=["rewards"], security=SECURITY, guards=READ,
     summary="The metric library: what each metric measures, its range, normalisation and parameters")
async def metrics() -> s.MetricList:
    return metric_list()


@post("/v1/rewards/score", operation_id="scoreOutputs", tags=["rewards"], security=SECURITY,
      guards=[requires("app", "ml")], status_code=200, responses=INVALID,
      summary="Score outputs (served or inline, e.g. a fan-out) under a reward function, term by term")
async def score(feedback: FeedbackClient, principal: Principal, data: s.ScoreRequest) -> s.ScoreResponse:
    return await feedback.score(principal, data)


REWARD_ROUTES: list[Any] = [RewardFunctionsController, metrics, score]
