"""The Litestar application: routes, dependencies, middleware, error handling and OpenAPI.

`create_app(deps)` receives every long-lived object (settings, key store, Redis, the
connected event bus, backend stubs) and hands them to controllers as Litestar
dependencies, so tests build the same app against real infrastructure.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from litestar import Litestar
from litestar.di import Provide
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import SwaggerRenderPlugin
from litestar.openapi.spec import Components, SecurityScheme, Tag
from redis.asyncio import Redis

from dreamforge.bus import EventBus
from dreamforge.v1 import feedback_pb2_grpc, inference_pb2_grpc, registry_pb2_grpc, trainer_pb2_grpc
from services.gateway.auth import AuthMiddleware, provide_principal
from services.gateway.billing_client import BillingClient, BillingStub, QuotaExceeded, QuotaGate, quota_exceeded
from services.gateway.body_deadline import BodyDeadlineMiddleware
from services.gateway.errors import EXCEPTION_HANDLERS
from services.gateway.event_relay import EventRelay
from services.gateway.feedback_client import FeedbackClient
from services.gateway.health import HealthService
from services.gateway.idempotency import IdempotencyMiddleware, IdempotencyStore
from services.gateway.keys import KeyStore
from services.gateway.openapi import ClosedStructs, DocumentErrors
from services.gateway.ratelimit import RateLimiter
from services.gateway.registry_client import RegistryClient
from services.gateway.request_ids import RequestContextMiddleware, add_request_id_header
from services.gateway.routes.admin import AdminController, whoami
from services.gateway.routes.billing import BILLING_ROUTES
from services.gateway.routes.chat import chat_completions
from services.gateway.routes.events_ws import events_ws
from services.gateway.routes.feedback import FeedbackController
from services.gateway.routes.health import HealthController
from services.gateway.routes.models import ModelsController, resolve
from services.gateway.routes.rater import RATER_ROUTES
from services.gateway.routes.rewards import REWARD_ROUTES
from services.gateway.routes.skills import SKILL_ROUTES
from services.gateway.routes.training import TrainingController, training_stream
from services.gateway.routes.tuning import TuningClient, TuningController
from services.gateway.settings import GatewaySettings
from services.gateway.skills import SkillService
from services.gateway.trainer_client import TrainerClient
from services.gateway.uploads import UploadMiddleware

T = TypeVar("T")


@dataclass
class GatewayDeps:
    """Everything the gateway's handlers use; built by `main.build` (or a test)."""

    settings: GatewaySettings
    keys: KeyStore
    redis: Redis
    bus: EventBus
    registry: registry_pb2_grpc.RegistryServiceStub
    inference: inference_pb2_grpc.InferenceServiceStub | None = None
    billing: BillingStub | None = None
    trainer: trainer_pb2_grpc.TrainerServiceStub | None = None
    tuning: trainer_pb2_grpc.TuningServiceStub | None = None
    feedback: feedback_pb2_grpc.FeedbackServiceStub | None = None
    #: False while starting or draining: `/ready` answers 503.
    serving: Callable[[], bool] = field(default=lambda: True)
    #: The billing quota gate of every skill call, HTTP and gRPC front alike (one allowance per tenant).
    quota: QuotaGate = field(init=False)

    def __post_init__(self) -> None:
        self.quota = QuotaGate(self.billing, cache_s=self.settings.quota_cache_s)

    def limiter(self) -> RateLimiter:
        return RateLimiter(self.redis, self.settings.rate_limit_per_minute, self.settings.rate_limit_burst)

    def idempotency(self) -> IdempotencyStore:
        return IdempotencyStore(self.redis, self.settings.backend_timeout_s)


def _const(value: T) -> Callable[[], Awaitable[T]]:
    async def provide() -> T:
        return value

    return provide


def create_app(deps: GatewayDeps) -> Litestar:
    settings = deps.settings
    health = HealthService(settings, deps.keys.db, deps.redis, deps.bus, settings.health_timeout_s, deps.serving)
    dependencies: dict[str, Any] = {
        "key_store": Provide(_const(deps.keys)),
        "registry": Provide(_const(RegistryClient(deps.registry, settings.backend_timeout_s))),
        "health": Provide(_const(health)),
        "relay": Provide(_const(EventRelay(deps.bus))),
        "skills": Provide(_const(SkillService(deps.inference, settings.backend_timeout_s,
                                                quota=deps.quota))),
        "billing": Provide(_const(BillingClient(deps.billing, settings.backend_timeout_s))),
        "principal": Provide(provide_principal),
        "trainer": Provide(_const(TrainerClient(deps.trainer, settings.backend_timeout_s))),
        "tuning": Provide(_const(TuningClient(deps.tuning, settings.backend_timeout_s))),
        "feedback": Provide(_const(FeedbackClient(deps.feedback, settings.backend_timeout_s))),
    }
    return Litestar(
        route_handlers=[HealthController, whoami, AdminController, ModelsController, resolve, events_ws,
                        *SKILL_ROUTES, chat_completions, *BILLING_ROUTES, TrainingController, training_stream,
                        TuningController, FeedbackController, *RATER_ROUTES, *REWARD_ROUTES],
        dependencies=dependencies,
        middleware=[RequestContextMiddleware(), BodyDeadlineMiddleware(settings.body_timeout_s),
                    AuthMiddleware(deps.keys, deps.limiter()),
                    UploadMiddleware(settings.max_body_bytes),
                    IdempotencyMiddleware(deps.idempotency(), settings.max_body_bytes)],
        exception_handlers={**EXCEPTION_HANDLERS, QuotaExceeded: quota_exceeded},
        plugins=[DocumentErrors(), ClosedStructs()],
        before_send=[add_request_id_header],
        request_max_body_size=settings.max_body_bytes,
        logging_config=None,
        openapi_config=OpenAPIConfig(
            title="DreamForge API",
            version="1.0.0",
            description="Serve small vision-language models and improve them from feedback. "
                        "Authenticate with `Authorization: Bearer <API key>`.",
            path="/docs",
            render_plugins=[SwaggerRenderPlugin(path="/")],
            components=Components(security_schemes={"apiKey": SecurityScheme(
                type="http", scheme="bearer", description="A DreamForge API key: df_<key id>_<secret>")}),
            tags=[Tag(name="skills", description="Caption, query, detect, point and chat (Moondream- and "
                                                 "OpenAI-compatible), side by side, in batches"),
                  Tag(name="models", description="Models, versions, aliases and previews"),
                  Tag(name="training", description="Training jobs (GRPO, DPO, SFT on LoRA), live progress and "
                                                   "the online trigger's policy"),
                  Tag(name="tuning", description="Moondream-compatible interactive tuning (moondream.ft): "
                                                 "finetunes, rollouts, train steps, checkpoints"),
                  Tag(name="feedback", description="Ratings of served outputs, the rater queue, agreement and the "
                                                   "tenant's feedback data (retention, export, deletion)"),
                  Tag(name="rewards", description="Reward functions as versioned JSON, the metric library, scoring"),
                  Tag(name="billing", description="Usage, finance reports (JSON/CSV), the cost calculator, "
                                                  "plans and the Stripe webhook"),
                  Tag(name="admin", description="Tenants and API keys (scope admin)"),
                  Tag(name="auth", description="The calling key"),
                  Tag(name="ops", description="Health and readiness (no key needed)")],
        ),
    )
