import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from dreamforge.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class GetUsageRequest(_message.Message):
    __slots__ = ("caller", "to")
    CALLER_FIELD_NUMBER: _ClassVar[int]
    FROM_FIELD_NUMBER: _ClassVar[int]
    TO_FIELD_NUMBER: _ClassVar[int]
    caller: _common_pb2.Caller
    to: str
    def __init__(self, caller: _Optional[_Union[_common_pb2.Caller, _Mapping]] = ..., to: _Optional[str] = ..., **kwargs) -> None: ...

class UsageSummary(_message.Message):
    __slots__ = ("requests", "images", "input_tokens", "output_tokens", "cost_minor_units", "currency", "billable_images", "to", "plan", "month_images", "month_limit_images", "latency_p50_ms", "latency_p95_ms", "skills")
    REQUESTS_FIELD_NUMBER: _ClassVar[int]
    IMAGES_FIELD_NUMBER: _ClassVar[int]
    INPUT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    COST_MINOR_UNITS_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    BILLABLE_IMAGES_FIELD_NUMBER: _ClassVar[int]
    FROM_FIELD_NUMBER: _ClassVar[int]
    TO_FIELD_NUMBER: _ClassVar[int]
    PLAN_FIELD_NUMBER: _ClassVar[int]
    MONTH_IMAGES_FIELD_NUMBER: _ClassVar[int]
    MONTH_LIMIT_IMAGES_FIELD_NUMBER: _ClassVar[int]
    LATENCY_P50_MS_FIELD_NUMBER: _ClassVar[int]
    LATENCY_P95_MS_FIELD_NUMBER: _ClassVar[int]
    SKILLS_FIELD_NUMBER: _ClassVar[int]
    requests: int
    images: int
    input_tokens: int
    output_tokens: int
    cost_minor_units: int
    currency: str
    billable_images: int
    to: str
    plan: str
    month_images: int
    month_limit_images: int
    latency_p50_ms: float
    latency_p95_ms: float
    skills: _containers.RepeatedCompositeFieldContainer[ReportRow]
    def __init__(self, requests: _Optional[int] = ..., images: _Optional[int] = ..., input_tokens: _Optional[int] = ..., output_tokens: _Optional[int] = ..., cost_minor_units: _Optional[int] = ..., currency: _Optional[str] = ..., billable_images: _Optional[int] = ..., to: _Optional[str] = ..., plan: _Optional[str] = ..., month_images: _Optional[int] = ..., month_limit_images: _Optional[int] = ..., latency_p50_ms: _Optional[float] = ..., latency_p95_ms: _Optional[float] = ..., skills: _Optional[_Iterable[_Union[ReportRow, _Mapping]]] = ..., **kwargs) -> None: ...

class ReportRequest(_message.Message):
    __slots__ = ("caller", "group_by", "to", "tenant")
    CALLER_FIELD_NUMBER: _ClassVar[int]
    GROUP_BY_FIELD_NUMBER: _ClassVar[int]
    FROM_FIELD_NUMBER: _ClassVar[int]
    TO_FIELD_NUMBER: _ClassVar[int]
    TENANT_FIELD_NUMBER: _ClassVar[int]
    caller: _common_pb2.Caller
    group_by: _containers.RepeatedScalarFieldContainer[str]
    to: str
    tenant: str
    def __init__(self, caller: _Optional[_Union[_common_pb2.Caller, _Mapping]] = ..., group_by: _Optional[_Iterable[str]] = ..., to: _Optional[str] = ..., tenant: _Optional[str] = ..., **kwargs) -> None: ...

class ReportRow(_message.Message):
    __slots__ = ("group", "requests", "images", "input_tokens", "output_tokens", "cost_minor_units", "latency_p50_ms", "latency_p95_ms", "billable_images")
    class GroupEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    GROUP_FIELD_NUMBER: _ClassVar[int]
    REQUESTS_FIELD_NUMBER: _ClassVar[int]
    IMAGES_FIELD_NUMBER: _ClassVar[int]
    INPUT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    COST_MINOR_UNITS_FIELD_NUMBER: _ClassVar[int]
    LATENCY_P50_MS_FIELD_NUMBER: _ClassVar[int]
    LATENCY_P95_MS_FIELD_NUMBER: _ClassVar[int]
    BILLABLE_IMAGES_FIELD_NUMBER: _ClassVar[int]
    group: _containers.ScalarMap[str, str]
    requests: int
    images: int
    input_tokens: int
    output_tokens: int
    cost_minor_units: int
    latency_p50_ms: float
    latency_p95_ms: float
    billable_images: int
    def __init__(self, group: _Optional[_Mapping[str, str]] = ..., requests: _Optional[int] = ..., images: _Optional[int] = ..., input_tokens: _Optional[int] = ..., output_tokens: _Optional[int] = ..., cost_minor_units: _Optional[int] = ..., latency_p50_ms: _Optional[float] = ..., latency_p95_ms: _Optional[float] = ..., billable_images: _Optional[int] = ...) -> None: ...

class ReportResponse(_message.Message):
    __slots__ = ("rows", "totals", "currency", "group_by", "to")
    ROWS_FIELD_NUMBER: _ClassVar[int]
    TOTALS_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    GROUP_BY_FIELD_NUMBER: _ClassVar[int]
    FROM_FIELD_NUMBER: _ClassVar[int]
    TO_FIELD_NUMBER: _ClassVar[int]
    rows: _containers.RepeatedCompositeFieldContainer[ReportRow]
    totals: ReportRow
    currency: str
    group_by: _containers.RepeatedScalarFieldContainer[str]
    to: str
    def __init__(self, rows: _Optional[_Iterable[_Union[ReportRow, _Mapping]]] = ..., totals: _Optional[_Union[ReportRow, _Mapping]] = ..., currency: _Optional[str] = ..., group_by: _Optional[_Iterable[str]] = ..., to: _Optional[str] = ..., **kwargs) -> None: ...

class QuoteRequest(_message.Message):
    __slots__ = ("caller", "plan", "images_per_month")
    class ImagesPerMonthEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    CALLER_FIELD_NUMBER: _ClassVar[int]
    PLAN_FIELD_NUMBER: _ClassVar[int]
    IMAGES_PER_MONTH_FIELD_NUMBER: _ClassVar[int]
    caller: _common_pb2.Caller
    plan: str
    images_per_month: _containers.ScalarMap[str, int]
    def __init__(self, caller: _Optional[_Union[_common_pb2.Caller, _Mapping]] = ..., plan: _Optional[str] = ..., images_per_month: _Optional[_Mapping[str, int]] = ...) -> None: ...

class QuoteLine(_message.Message):
    __slots__ = ("skill", "images", "billable_images", "unit_price_minor_units", "amount_minor_units", "included_images")
    SKILL_FIELD_NUMBER: _ClassVar[int]
    IMAGES_FIELD_NUMBER: _ClassVar[int]
    BILLABLE_IMAGES_FIELD_NUMBER: _ClassVar[int]
    UNIT_PRICE_MINOR_UNITS_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_MINOR_UNITS_FIELD_NUMBER: _ClassVar[int]
    INCLUDED_IMAGES_FIELD_NUMBER: _ClassVar[int]
    skill: str
    images: int
    billable_images: int
    unit_price_minor_units: int
    amount_minor_units: int
    included_images: int
    def __init__(self, skill: _Optional[str] = ..., images: _Optional[int] = ..., billable_images: _Optional[int] = ..., unit_price_minor_units: _Optional[int] = ..., amount_minor_units: _Optional[int] = ..., included_images: _Optional[int] = ...) -> None: ...

class QuoteResponse(_message.Message):
    __slots__ = ("plan", "lines", "total_minor_units", "currency", "total_images", "hard_limit_images", "within_limit")
    PLAN_FIELD_NUMBER: _ClassVar[int]
    LINES_FIELD_NUMBER: _ClassVar[int]
    TOTAL_MINOR_UNITS_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    TOTAL_IMAGES_FIELD_NUMBER: _ClassVar[int]
    HARD_LIMIT_IMAGES_FIELD_NUMBER: _ClassVar[int]
    WITHIN_LIMIT_FIELD_NUMBER: _ClassVar[int]
    plan: str
    lines: _containers.RepeatedCompositeFieldContainer[QuoteLine]
    total_minor_units: int
    currency: str
    total_images: int
    hard_limit_images: int
    within_limit: bool
    def __init__(self, plan: _Optional[str] = ..., lines: _Optional[_Iterable[_Union[QuoteLine, _Mapping]]] = ..., total_minor_units: _Optional[int] = ..., currency: _Optional[str] = ..., total_images: _Optional[int] = ..., hard_limit_images: _Optional[int] = ..., within_limit: _Optional[bool] = ...) -> None: ...

class CheckQuotaRequest(_message.Message):
    __slots__ = ("caller", "skill", "images")
    CALLER_FIELD_NUMBER: _ClassVar[int]
    SKILL_FIELD_NUMBER: _ClassVar[int]
    IMAGES_FIELD_NUMBER: _ClassVar[int]
    caller: _common_pb2.Caller
    skill: str
    images: int
    def __init__(self, caller: _Optional[_Union[_common_pb2.Caller, _Mapping]] = ..., skill: _Optional[str] = ..., images: _Optional[int] = ...) -> None: ...

class CheckQuotaResponse(_message.Message):
    __slots__ = ("allowed", "reason", "http_status", "used_images", "limit_images", "retry_after_s")
    ALLOWED_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    HTTP_STATUS_FIELD_NUMBER: _ClassVar[int]
    USED_IMAGES_FIELD_NUMBER: _ClassVar[int]
    LIMIT_IMAGES_FIELD_NUMBER: _ClassVar[int]
    RETRY_AFTER_S_FIELD_NUMBER: _ClassVar[int]
    allowed: bool
    reason: str
    http_status: int
    used_images: int
    limit_images: int
    retry_after_s: int
    def __init__(self, allowed: _Optional[bool] = ..., reason: _Optional[str] = ..., http_status: _Optional[int] = ..., used_images: _Optional[int] = ..., limit_images: _Optional[int] = ..., retry_after_s: _Optional[int] = ...) -> None: ...

class Plan(_message.Message):
    __slots__ = ("id", "name", "currency", "included_images", "unit_price_minor_units", "hard_limit_images", "limit_status", "description")
    class IncludedImagesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    class UnitPriceMinorUnitsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    INCLUDED_IMAGES_FIELD_NUMBER: _ClassVar[int]
    UNIT_PRICE_MINOR_UNITS_FIELD_NUMBER: _ClassVar[int]
    HARD_LIMIT_IMAGES_FIELD_NUMBER: _ClassVar[int]
    LIMIT_STATUS_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    currency: str
    included_images: _containers.ScalarMap[str, int]
    unit_price_minor_units: _containers.ScalarMap[str, int]
    hard_limit_images: int
    limit_status: int
    description: str
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., currency: _Optional[str] = ..., included_images: _Optional[_Mapping[str, int]] = ..., unit_price_minor_units: _Optional[_Mapping[str, int]] = ..., hard_limit_images: _Optional[int] = ..., limit_status: _Optional[int] = ..., description: _Optional[str] = ...) -> None: ...

class ListPlansRequest(_message.Message):
    __slots__ = ("caller",)
    CALLER_FIELD_NUMBER: _ClassVar[int]
    caller: _common_pb2.Caller
    def __init__(self, caller: _Optional[_Union[_common_pb2.Caller, _Mapping]] = ...) -> None: ...

class ListPlansResponse(_message.Message):
    __slots__ = ("plans",)
    PLANS_FIELD_NUMBER: _ClassVar[int]
    plans: _containers.RepeatedCompositeFieldContainer[Plan]
    def __init__(self, plans: _Optional[_Iterable[_Union[Plan, _Mapping]]] = ...) -> None: ...

class GetPlanRequest(_message.Message):
    __slots__ = ("caller", "id")
    CALLER_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    caller: _common_pb2.Caller
    id: str
    def __init__(self, caller: _Optional[_Union[_common_pb2.Caller, _Mapping]] = ..., id: _Optional[str] = ...) -> None: ...

class PutPlanRequest(_message.Message):
    __slots__ = ("caller", "plan")
    CALLER_FIELD_NUMBER: _ClassVar[int]
    PLAN_FIELD_NUMBER: _ClassVar[int]
    caller: _common_pb2.Caller
    plan: Plan
    def __init__(self, caller: _Optional[_Union[_common_pb2.Caller, _Mapping]] = ..., plan: _Optional[_Union[Plan, _Mapping]] = ...) -> None: ...

class PlanAssignment(_message.Message):
    __slots__ = ("plan", "effective_from", "assigned_at", "assigned_by")
    PLAN_FIELD_NUMBER: _ClassVar[int]
    EFFECTIVE_FROM_FIELD_NUMBER: _ClassVar[int]
    ASSIGNED_AT_FIELD_NUMBER: _ClassVar[int]
    ASSIGNED_BY_FIELD_NUMBER: _ClassVar[int]
    plan: str
    effective_from: _timestamp_pb2.Timestamp
    assigned_at: _timestamp_pb2.Timestamp
    assigned_by: str
    def __init__(self, plan: _Optional[str] = ..., effective_from: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., assigned_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., assigned_by: _Optional[str] = ...) -> None: ...

class TenantPlan(_message.Message):
    __slots__ = ("tenant_id", "current", "assignments")
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    CURRENT_FIELD_NUMBER: _ClassVar[int]
    ASSIGNMENTS_FIELD_NUMBER: _ClassVar[int]
    tenant_id: str
    current: Plan
    assignments: _containers.RepeatedCompositeFieldContainer[PlanAssignment]
    def __init__(self, tenant_id: _Optional[str] = ..., current: _Optional[_Union[Plan, _Mapping]] = ..., assignments: _Optional[_Iterable[_Union[PlanAssignment, _Mapping]]] = ...) -> None: ...

class GetTenantPlanRequest(_message.Message):
    __slots__ = ("caller", "tenant_id")
    CALLER_FIELD_NUMBER: _ClassVar[int]
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    caller: _common_pb2.Caller
    tenant_id: str
    def __init__(self, caller: _Optional[_Union[_common_pb2.Caller, _Mapping]] = ..., tenant_id: _Optional[str] = ...) -> None: ...

class AssignPlanRequest(_message.Message):
    __slots__ = ("caller", "tenant_id", "plan", "effective_from")
    CALLER_FIELD_NUMBER: _ClassVar[int]
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    PLAN_FIELD_NUMBER: _ClassVar[int]
    EFFECTIVE_FROM_FIELD_NUMBER: _ClassVar[int]
    caller: _common_pb2.Caller
    tenant_id: str
    plan: str
    effective_from: _timestamp_pb2.Timestamp
    def __init__(self, caller: _Optional[_Union[_common_pb2.Caller, _Mapping]] = ..., tenant_id: _Optional[str] = ..., plan: _Optional[str] = ..., effective_from: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class StripeWebhookRequest(_message.Message):
    __slots__ = ("payload", "signature")
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    payload: bytes
    signature: str
    def __init__(self, payload: _Optional[bytes] = ..., signature: _Optional[str] = ...) -> None: ...

class StripeWebhookResponse(_message.Message):
    __slots__ = ("event_id", "type", "duplicate")
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    DUPLICATE_FIELD_NUMBER: _ClassVar[int]
    event_id: str
    type: str
    duplicate: bool
    def __init__(self, event_id: _Optional[str] = ..., type: _Optional[str] = ..., duplicate: _Optional[bool] = ...) -> None: ...
