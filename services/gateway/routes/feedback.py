"""Feedback routes: rate served outputs (scope `app` or `rater`; the API key is the rater), list,
edit and withdraw ratings, read a served output; and the tenant's feedback data (scope `admin`):
retention settings, purge, export (JSON lines) and deletion for GDPR requests."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, delete, get, post, put
from litestar.params import Parameter
from litestar.response import Stream

from services.gateway.auth import requires
from services.gateway.feedback_client import FeedbackClient
from services.gateway.keys import Principal
from services.gateway.routes.admin import SECURITY
from services.gateway.schemas import feedback as s

RATE = [requires("app", "rater")]
READ = [requires("app", "rater", "ml")]
ADMIN = [requires("admin")]

PageSize = Annotated[int, Parameter(ge=1, le=200, description="Items per page (1-200)")]
PageToken = Annotated[str, Parameter(max_length=500, description="`next_page_token` of the previous page")]
IdempotencyKey = Annotated[str | None, Parameter(
    header="Idempotency-Key", max_length=200, description="Retries with the same key record the rating once")]
FeedbackId = Annotated[str, Parameter(max_length=40, description="The rating's id (`fb_...`)")]
TenantId = Annotated[str, Parameter(max_length=100, description="Tenant to act on (default: the key's own)")]


class FeedbackController(Controller):
    path = "/v1/feedback"
    tags = ["feedback"]
    security = SECURITY

    @post("/", operation_id="submitFeedback", guards=RATE,
          summary="Rate a served output: thumbs, 1-5 score, pairwise preference, correction or flag")
    async def submit(self, feedback: FeedbackClient, principal: Principal, data: s.SubmitFeedback,
                     idempotency_key: IdempotencyKey = None) -> s.FeedbackOut:
        return await feedback.submit(principal, data, idempotency_key or "")

    @get("/", operation_id="listFeedback", guards=READ, summary="Ratings of an output, or your own (mine=true)")
    async def list_feedback(self, feedback: FeedbackClient, principal: Principal,
                            request_id: Annotated[str, Parameter(max_length=100, description="Only this output")] = "",
                            mine: Annotated[bool, Parameter(description="Only the calling key's ratings")] = False,
                            page_size: PageSize = 50, page_token: PageToken = "") -> s.FeedbackList:
        return await feedback.list(principal, request_id, mine, page_size, page_token)

    @put("/{feedback_id:str}", operation_id="editFeedback", guards=RATE,
         summary="Change one of your ratings (its reward is scored again)")
    async def edit(self, feedback: FeedbackClient, principal: Principal, feedback_id: FeedbackId,
                   data: s.EditFeedback) -> s.FeedbackOut:
        return await feedback.edit(principal, feedback_id, data)

    @delete("/{feedback_id:str}", operation_id="withdrawFeedback", guards=RATE, status_code=200,
            summary="Withdraw one of your ratings")
    async def withdraw(self, feedback: FeedbackClient, principal: Principal, feedback_id: FeedbackId
                       ) -> s.FeedbackOut:
        return await feedback.withdraw(principal, feedback_id)

    @get("/outputs/{request_id:str}", operation_id="getServedOutput", guards=READ,
         summary="A served output as kept for rating (prompt, image ref, output, version, latency)")
    async def output(self, feedback: FeedbackClient, principal: Principal,
                     request_id: Annotated[str, Parameter(max_length=100)]) -> s.OutputOut:
        return await feedback.output(principal, request_id)

    @get("/data/settings", operation_id="getFeedbackDataSettings", guards=ADMIN,
         summary="Retention (days) and rater-queue overlap of a tenant")
    async def get_settings(self, feedback: FeedbackClient, principal: Principal, tenant_id: TenantId = ""
                           ) -> s.DataSettingsOut:
        return await feedback.data_settings(principal, tenant_id)

    @put("/data/settings", operation_id="setFeedbackDataSettings", guards=ADMIN,
         summary="Set a tenant's retention (days, 0 = forever) and rater-queue overlap")
    async def set_settings(self, feedback: FeedbackClient, principal: Principal, data: s.DataSettingsIn,
                           tenant_id: TenantId = "") -> s.DataSettingsOut:
        return await feedback.update_data_settings(principal, tenant_id, data)

    @post("/data/purge", operation_id="purgeFeedbackData", guards=ADMIN, status_code=200,
          summary="Remove what is older than the tenant's retention now (also done periodically)")
    async def purge(self, feedback: FeedbackClient, principal: Principal, tenant_id: TenantId = ""
                    ) -> s.DataCountsOut:
        return await feedback.purge(principal, tenant_id)

    @delete("/data", operation_id="deleteFeedbackData", guards=ADMIN, status_code=200,
            summary="Delete every output, rating, reward function, setting and image of a tenant")
    async def delete_all(self, feedback: FeedbackClient, principal: Principal, tenant_id: TenantId = ""
                         ) -> s.DataCountsOut:
        return await feedback.delete_all(principal, tenant_id)

    @get("/data/export", operation_id="exportFeedbackData", guards=ADMIN, media_type="application/x-ndjson",
         content_media_type="application/x-ndjson",
         response_description='JSON lines: `{"type": "settings"|"output"|"feedback"|"reward_function", "data": {...}}`',
         summary="Export everything held for a tenant (JSON lines)")
    async def export(self, feedback: FeedbackClient, principal: Principal, tenant_id: TenantId = "") -> Stream:
        return Stream(await feedback.export(principal, tenant_id), media_type="application/x-ndjson")
