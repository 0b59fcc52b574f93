import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from dreamforge.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Output(_message.Message):
    __slots__ = ("request_id", "model_id", "version", "skill", "prompt", "image_ref", "output_json", "latency_ms", "created_at")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    SKILL_FIELD_NUMBER: _ClassVar[int]
    PROMPT_FIELD_NUMBER: _ClassVar[int]
    IMAGE_REF_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_JSON_FIELD_NUMBER: _ClassVar[int]
    LATENCY_MS_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    model_id: str
    version: int
    skill: str
    prompt: str
    image_ref: str
    output_json: str
    latency_ms: float
    created_at: _timestamp_pb2.Timestamp
    def __init__(self, request_id: _Optional[str] = ..., model_id: _Optional[str] = ..., version: _Optional[int] = ..., skill: _Optional[str] = ..., prompt: _Optional[str] = ..., image_ref: _Optional[str] = ..., output_json: _Optional[str] = ..., latency_ms: _Optional[float] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class GetOutputRequest(_message.Message):
    __slots__ = ("caller", "request_id")
    CALLER_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    caller: _common_pb2.Caller
    request_id: str
    def __init__(self, caller: _Optional[_Union[_common_pb2.Caller, _Mapping]] = ..., request_id: _Optional[str] = ...) -> None: ...

class Feedback(_message.Message):
    __slots__ = ("id", "request_id", "rater_id", "kind", "value_json", "other_request_id", "created_at", "comment", "revision", "updated_at", "withdrawn")
    ID_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    RATER_ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    VALUE_JSON_FIELD_NUMBER: _ClassVar[int]
    OTHER_REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    COMMENT_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    WITHDRAWN_FIELD_NUMBER: _ClassVar[int]
    id: str
    request_id: str
    rater_id: str
    kind: str
    value_json: str
    other_request_id: str
    created_at: _timestamp_pb2.Timestamp
    comment: str
    revision: int
    updated_at: _timestamp_pb2.Timestamp
    withdrawn: bool
    def __init__(self, id: _Optional[str] = ..., request_id: _Optional[str] = ..., rater_id: _Optional[str] = ..., kind: _Optional[str] = ..., value_json: _Optional[str] = ..., other_request_id: _Optional[str] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., comment: _Optional[str] = ..., revision: _Optional[int] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., withdrawn: _Optional[bool] = ...) -> None: ...

class SubmitFeedbackRequest(_message.Message):
    __slots__ = ("caller", "request_id", "kind", "value_json", "other_request_id", "idempotency_key", "comment")
    CALLER_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    VALUE_JSON_FIELD_NUMBER: _ClassVar[int]
    OTHER_REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    COMMENT_FIELD_NUMBER: _ClassVar[int]
    caller: _common_pb2.Caller
    request_id: str
    kind: str
    value_json: str
    other_request_id: str
    idempotency_key: str
    comment: str
    def __init__(self, caller: _Optional[_Union[_common_pb2.Caller, _Mapping]] = ..., request_id: _Optional[str] = ..., kind: _Optional[str] = ..., value_json: _Optional[str] = ..., other_request_id: _Optional[str] = ..., idempotency_key: _Optional[str] = ..., comment: _Optional[str] = ...) -> None: ...

class ListFeedbackRequest(_message.Message):
    __slots__ = ("caller", "request_id", "page", "mine")
    CALLER_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_FIELD_NUMBER: _ClassVar[int]
    MINE_FIELD_NUMBER: _ClassVar[int]
    caller: _common_pb2.Caller
    request_id: str
    page: _common_pb2.PageRequest
    mine: bool
    def __init__(self, caller: _Optional[_Union[_common_pb2.Caller, _Mapping]] = ..., request_id: _Optional[str] = ..., page: _Optional[_Union[_common_pb2.PageRequest, _Mapping]] = ..., mine: _Optional[bool] = ...) -> None: ...

class ListFeedbackResponse(_message.Message):
    __slots__ = ("feedback", "page")
    FEEDBACK_FIELD_NUMBER: _ClassVar[int]
    PAGE_FIELD_NUMBER: _ClassVar[int]
    feedback: _containers.RepeatedCompositeFieldContainer[Feedback]
    page: _common_pb2.PageInfo
    def __init__(self, feedback: _Optional[_Iterable[_Union[Feedback, _Mapping]]] = ..., page: _Optional[_Union[_common_pb2.PageInfo, _Mapping]] = ...) -> None: ...

class UpdateFeedbackRequest(_message.Message):
    __slots__ = ("caller", "id", "value_json", "comment")
    CALLER_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    VALUE_JSON_FIELD_NUMBER: _ClassVar[int]
    COMMENT_FIELD_NUMBER: _ClassVar[int]
    caller: _common_pb2.Caller
    id: str
    value_json: str
    comment: str
    def __init__(self, caller: _Optional[_Union[_common_pb2.Caller, _Mapping]] = ..., id: _Optional[str] = ..., value_json: _Optional[str] = ..., comment: _Optional[str] = ...) -> None: ...

class WithdrawFeedbackRequest(_message.Message):
    __slots__ = ("caller", "id")
    CALLER_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    caller: _common_pb2.Caller
    id: str
    def __init__(self, caller: _Optional[_Union[_common_pb2.Caller, _Mapping]] = ..., id: _Optional[str] = ...) -> None: ...

class NextQueueItemRequest(_message.Message):
    __slots__ = ("caller", "skill")
    CALLER_FIELD_NUMBER: _ClassVar[int]
    SKILL_FIELD_NUMBER: _ClassVar[int]
    caller: _common_pb2.Caller
    skill: str
    def __init__(self, caller: _Optional[_Union[_common_pb2.Caller, _Mapping]] = ..., skill: _Optional[str] = ...) -> None: ...

class QueueItem(_message.Message):
    __slots__ = ("output", "remaining", "overlap")
    OUTPUT_FIELD_NUMBER: _ClassVar[int]
    REMAINING_FIELD_NUMBER: _ClassVar[int]
    OVERLAP_FIELD_NUMBER: _ClassVar[int]
    output: Output
    remaining: int
    overlap: int
    def __init__(self, output: _Optional[_Union[Output, _Mapping]] = ..., remaining: _Optional[int] = ..., overlap: _Optional[int] = ...) -> None: ...

class GetAgreementRequest(_message.Message):
    __slots__ = ("caller",)
    CALLER_FIELD_NUMBER: _ClassVar[int]
    caller: _common_pb2.Caller
    def __init__(self, caller: _Optional[_Union[_common_pb2.Caller, _Mapping]] = ...) -> None: ...

class TaskAgreement(_message.Message):
    __slots__ = ("skill", "kind", "level", "alpha", "items", "raters", "ratings", "note")
    SKILL_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    LEVEL_FIELD_NUMBER: _ClassVar[int]
    ALPHA_FIELD_NUMBER: _ClassVar[int]
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    RATERS_FIELD_NUMBER: _ClassVar[int]
    RATINGS_FIELD_NUMBER: _ClassVar[int]
    NOTE_FIELD_NUMBER: _ClassVar[int]
    skill: str
    kind: str
    level: str
    alpha: float
    items: int
    raters: int
    ratings: int
    note: str
    def __init__(self, skill: _Optional[str] = ..., kind: _Optional[str] = ..., level: _Optional[str] = ..., alpha: _Optional[float] = ..., items: _Optional[int] = ..., raters: _Optional[int] = ..., ratings: _Optional[int] = ..., note: _Optional[str] = ...) -> None: ...

class AgreementReport(_message.Message):
    __slots__ = ("tasks",)
    TASKS_FIELD_NUMBER: _ClassVar[int]
    tasks: _containers.RepeatedCompositeFieldContainer[TaskAgreement]
    def __init__(self, tasks: _Optional[_Iterable[_Union[TaskAgreement, _Mapping]]] = ...) -> None: ...

class RewardFunction(_message.Message):
    __slots__ = ("id", "version", "name", "definition_json", "created_at", "active", "created_by")
    ID_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    DEFINITION_JSON_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_FIELD_NUMBER: _ClassVar[int]
    CREATED_BY_FIELD_NUMBER: _ClassVar[int]
    id: str
    version: int
    name: str
    definition_json: str
    created_at: _timestamp_pb2.Timestamp
    active: bool
    created_by: str
    def __init__(self, id: _Optional[str] = ..., version: _Optional[int] = ..., name: _Optional[str] = ..., definition_json: _Optional[str] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., active: _Optional[bool] = ..., created_by: _Optional[str] = ...) -> None: ...

class SaveRewardFunctionRequest(_message.Message):
    __slots__ = ("caller", "id", "name", "definition_json", "active")
    CALLER_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    DEFINITION_JSON_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_FIELD_NUMBER: _ClassVar[int]
    caller: _common_pb2.Caller
    id: str
    name: str
    definition_json: str
    active: bool
    def __init__(self, caller: _Optional[_Union[_common_pb2.Caller, _Mapping]] = ..., id: _Optional[str] = ..., name: _Optional[str] = ..., definition_json: _Optional[str] = ..., active: _Optional[bool] = ...) -> None: ...

class ListRewardFunctionsRequest(_message.Message):
    __slots__ = ("caller", "page")
    CALLER_FIELD_NUMBER: _ClassVar[int]
    PAGE_FIELD_NUMBER: _ClassVar[int]
    caller: _common_pb2.Caller
    page: _common_pb2.PageRequest
    def __init__(self, caller: _Optional[_Union[_common_pb2.Caller, _Mapping]] = ..., page: _Optional[_Union[_common_pb2.PageRequest, _Mapping]] = ...) -> None: ...

class ListRewardFunctionVersionsRequest(_message.Message):
    __slots__ = ("caller", "id", "page")
    CALLER_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_FIELD_NUMBER: _ClassVar[int]
    caller: _common_pb2.Caller
    id: str
    page: _common_pb2.PageRequest
    def __init__(self, caller: _Optional[_Union[_common_pb2.Caller, _Mapping]] = ..., id: _Optional[str] = ..., page: _Optional[_Union[_common_pb2.PageRequest, _Mapping]] = ...) -> None: ...

class ListRewardFunctionsResponse(_message.Message):
    __slots__ = ("functions", "page")
    FUNCTIONS_FIELD_NUMBER: _ClassVar[int]
    PAGE_FIELD_NUMBER: _ClassVar[int]
    functions: _containers.RepeatedCompositeFieldContainer[RewardFunction]
    page: _common_pb2.PageInfo
    def __init__(self, functions: _Optional[_Iterable[_Union[RewardFunction, _Mapping]]] = ..., page: _Optional[_Union[_common_pb2.PageInfo, _Mapping]] = ...) -> None: ...

class GetRewardFunctionRequest(_message.Message):
    __slots__ = ("caller", "id", "version")
    CALLER_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    caller: _common_pb2.Caller
    id: str
    version: int
    def __init__(self, caller: _Optional[_Union[_common_pb2.Caller, _Mapping]] = ..., id: _Optional[str] = ..., version: _Optional[int] = ...) -> None: ...

class ScoreOutputsRequest(_message.Message):
    __slots__ = ("caller", "reward_function_id", "reward_function_version", "outputs", "reference_json", "definition_json")
    CALLER_FIELD_NUMBER: _ClassVar[int]
    REWARD_FUNCTION_ID_FIELD_NUMBER: _ClassVar[int]
    REWARD_FUNCTION_VERSION_FIELD_NUMBER: _ClassVar[int]
    OUTPUTS_FIELD_NUMBER: _ClassVar[int]
    REFERENCE_JSON_FIELD_NUMBER: _ClassVar[int]
    DEFINITION_JSON_FIELD_NUMBER: _ClassVar[int]
    caller: _common_pb2.Caller
    reward_function_id: str
    reward_function_version: int
    outputs: _containers.RepeatedCompositeFieldContainer[Output]
    reference_json: str
    definition_json: str
    def __init__(self, caller: _Optional[_Union[_common_pb2.Caller, _Mapping]] = ..., reward_function_id: _Optional[str] = ..., reward_function_version: _Optional[int] = ..., outputs: _Optional[_Iterable[_Union[Output, _Mapping]]] = ..., reference_json: _Optional[str] = ..., definition_json: _Optional[str] = ...) -> None: ...

class Score(_message.Message):
    __slots__ = ("reward", "terms", "request_id")
    class TermsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    REWARD_FIELD_NUMBER: _ClassVar[int]
    TERMS_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    reward: float
    terms: _containers.ScalarMap[str, float]
    request_id: str
    def __init__(self, reward: _Optional[float] = ..., terms: _Optional[_Mapping[str, float]] = ..., request_id: _Optional[str] = ...) -> None: ...

class ScoreOutputsResponse(_message.Message):
    __slots__ = ("scores", "reward_function_id", "reward_function_version")
    SCORES_FIELD_NUMBER: _ClassVar[int]
    REWARD_FUNCTION_ID_FIELD_NUMBER: _ClassVar[int]
    REWARD_FUNCTION_VERSION_FIELD_NUMBER: _ClassVar[int]
    scores: _containers.RepeatedCompositeFieldContainer[Score]
    reward_function_id: str
    reward_function_version: int
    def __init__(self, scores: _Optional[_Iterable[_Union[Score, _Mapping]]] = ..., reward_function_id: _Optional[str] = ..., reward_function_version: _Optional[int] = ...) -> None: ...

class DataSettings(_message.Message):
    __slots__ = ("retention_days", "queue_overlap")
    RETENTION_DAYS_FIELD_NUMBER: _ClassVar[int]
    QUEUE_OVERLAP_FIELD_NUMBER: _ClassVar[int]
    retention_days: int
    queue_overlap: int
    def __init__(self, retention_days: _Optional[int] = ..., queue_overlap: _Optional[int] = ...) -> None: ...

class GetDataSettingsRequest(_message.Message):
    __slots__ = ("caller",)
    CALLER_FIELD_NUMBER: _ClassVar[int]
    caller: _common_pb2.Caller
    def __init__(self, caller: _Optional[_Union[_common_pb2.Caller, _Mapping]] = ...) -> None: ...

class UpdateDataSettingsRequest(_message.Message):
    __slots__ = ("caller", "settings")
    CALLER_FIELD_NUMBER: _ClassVar[int]
    SETTINGS_FIELD_NUMBER: _ClassVar[int]
    caller: _common_pb2.Caller
    settings: DataSettings
    def __init__(self, caller: _Optional[_Union[_common_pb2.Caller, _Mapping]] = ..., settings: _Optional[_Union[DataSettings, _Mapping]] = ...) -> None: ...

class PurgeExpiredRequest(_message.Message):
    __slots__ = ("caller",)
    CALLER_FIELD_NUMBER: _ClassVar[int]
    caller: _common_pb2.Caller
    def __init__(self, caller: _Optional[_Union[_common_pb2.Caller, _Mapping]] = ...) -> None: ...

class DeleteTenantDataRequest(_message.Message):
    __slots__ = ("caller",)
    CALLER_FIELD_NUMBER: _ClassVar[int]
    caller: _common_pb2.Caller
    def __init__(self, caller: _Optional[_Union[_common_pb2.Caller, _Mapping]] = ...) -> None: ...

class DataCounts(_message.Message):
    __slots__ = ("outputs", "feedback", "reward_functions", "queue_assignments", "images")
    OUTPUTS_FIELD_NUMBER: _ClassVar[int]
    FEEDBACK_FIELD_NUMBER: _ClassVar[int]
    REWARD_FUNCTIONS_FIELD_NUMBER: _ClassVar[int]
    QUEUE_ASSIGNMENTS_FIELD_NUMBER: _ClassVar[int]
    IMAGES_FIELD_NUMBER: _ClassVar[int]
    outputs: int
    feedback: int
    reward_functions: int
    queue_assignments: int
    images: int
    def __init__(self, outputs: _Optional[int] = ..., feedback: _Optional[int] = ..., reward_functions: _Optional[int] = ..., queue_assignments: _Optional[int] = ..., images: _Optional[int] = ...) -> None: ...

class ExportTenantDataRequest(_message.Message):
    __slots__ = ("caller",)
    CALLER_FIELD_NUMBER: _ClassVar[int]
    caller: _common_pb2.Caller
    def __init__(self, caller: _Optional[_Union[_common_pb2.Caller, _Mapping]] = ...) -> None: ...

class ExportRecord(_message.Message):
    __slots__ = ("type", "json")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    JSON_FIELD_NUMBER: _ClassVar[int]
    type: str
    json: str
    def __init__(self, type: _Optional[str] = ..., json: _Optional[str] = ...) -> None: ...
