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
    __slots__ = ("requests", "images", "input_tokens", "output_tokens", "cost_minor_units", "currency")
    REQUESTS_FIELD_NUMBER: _ClassVar[int]
    IMAGES_FIELD_NUMBER: _ClassVar[int]
    INPUT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    COST_MINOR_UNITS_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    requests: int
    images: int
    input_tokens: int
    output_tokens: int
    cost_minor_units: int
    currency: str
    def __init__(self, requests: _Optional[int] = ..., images: _Optional[int] = ..., input_tokens: _Optional[int] = ..., output_tokens: _Optional[int] = ..., cost_minor_units: _Optional[int] = ..., currency: _Optional[str] = ...) -> None: ...

class ReportRequest(_message.Message):
    __slots__ = ("caller", "group_by", "to")
    CALLER_FIELD_NUMBER: _ClassVar[int]
    GROUP_BY_FIELD_NUMBER: _ClassVar[int]
    FROM_FIELD_NUMBER: _ClassVar[int]
    TO_FIELD_NUMBER: _ClassVar[int]
    caller: _common_pb2.Caller
    group_by: _containers.RepeatedScalarFieldContainer[str]
    to: str
    def __init__(self, caller: _Optional[_Union[_common_pb2.Caller, _Mapping]] = ..., group_by: _Optional[_Iterable[str]] = ..., to: _Optional[str] = ..., **kwargs) -> None: ...

class ReportRow(_message.Message):
    __slots__ = ("group", "requests", "images", "input_tokens", "output_tokens", "cost_minor_units", "latency_p50_ms", "latency_p95_ms")
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
    group: _containers.ScalarMap[str, str]
    requests: int
    images: int
    input_tokens: int
    output_tokens: int
    cost_minor_units: int
    latency_p50_ms: float
    latency_p95_ms: float
    def __init__(self, group: _Optional[_Mapping[str, str]] = ..., requests: _Optional[int] = ..., images: _Optional[int] = ..., input_tokens: _Optional[int] = ..., output_tokens: _Optional[int] = ..., cost_minor_units: _Optional[int] = ..., latency_p50_ms: _Optional[float] = ..., latency_p95_ms: _Optional[float] = ...) -> None: ...

class ReportResponse(_message.Message):
    __slots__ = ("rows", "totals", "currency")
    ROWS_FIELD_NUMBER: _ClassVar[int]
    TOTALS_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    rows: _containers.RepeatedCompositeFieldContainer[ReportRow]
    totals: ReportRow
    currency: str
    def __init__(self, rows: _Optional[_Iterable[_Union[ReportRow, _Mapping]]] = ..., totals: _Optional[_Union[ReportRow, _Mapping]] = ..., currency: _Optional[str] = ...) -> None: ...

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
    __slots__ = ("skill", "images", "billable_images", "unit_price_minor_units", "amount_minor_units")
    SKILL_FIELD_NUMBER: _ClassVar[int]
    IMAGES_FIELD_NUMBER: _ClassVar[int]
    BILLABLE_IMAGES_FIELD_NUMBER: _ClassVar[int]
    UNIT_PRICE_MINOR_UNITS_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_MINOR_UNITS_FIELD_NUMBER: _ClassVar[int]
    skill: str
    images: int
    billable_images: int
    unit_price_minor_units: int
    amount_minor_units: int
    def __init__(self, skill: _Optional[str] = ..., images: _Optional[int] = ..., billable_images: _Optional[int] = ..., unit_price_minor_units: _Optional[int] = ..., amount_minor_units: _Optional[int] = ...) -> None: ...

class QuoteResponse(_message.Message):
    __slots__ = ("plan", "lines", "total_minor_units", "currency")
    PLAN_FIELD_NUMBER: _ClassVar[int]
    LINES_FIELD_NUMBER: _ClassVar[int]
    TOTAL_MINOR_UNITS_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    plan: str
    lines: _containers.RepeatedCompositeFieldContainer[QuoteLine]
    total_minor_units: int
    currency: str
    def __init__(self, plan: _Optional[str] = ..., lines: _Optional[_Iterable[_Union[QuoteLine, _Mapping]]] = ..., total_minor_units: _Optional[int] = ..., currency: _Optional[str] = ...) -> None: ...

class CheckQuotaRequest(_message.Message):
    __slots__ = ("caller", "skill")
    CALLER_FIELD_NUMBER: _ClassVar[int]
    SKILL_FIELD_NUMBER: _ClassVar[int]
    caller: _common_pb2.Caller
    skill: str
    def __init__(self, caller: _Optional[_Union[_common_pb2.Caller, _Mapping]] = ..., skill: _Optional[str] = ...) -> None: ...

class CheckQuotaResponse(_message.Message):
    __slots__ = ("allowed", "reason")
    ALLOWED_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    allowed: bool
    reason: str
    def __init__(self, allowed: _Optional[bool] = ..., reason: _Optional[str] = ...) -> None: ...
