import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from dreamforge.v1 import common_pb2 as _common_pb2
from dreamforge.v1 import events_pb2 as _events_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class TrainingJob(_message.Message):
    __slots__ = ("id", "model", "base_version", "reward_function_id", "method", "config_json", "status", "reason", "result_version", "created_at", "updated_at", "reward_function_version", "trigger", "promoted", "eval_before", "eval_after", "gate_json", "history", "queue_position", "reward_function_json")
    class EvalBeforeEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    class EvalAfterEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    BASE_VERSION_FIELD_NUMBER: _ClassVar[int]
    REWARD_FUNCTION_ID_FIELD_NUMBER: _ClassVar[int]
    METHOD_FIELD_NUMBER: _ClassVar[int]
    CONFIG_JSON_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    RESULT_VERSION_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    REWARD_FUNCTION_VERSION_FIELD_NUMBER: _ClassVar[int]
    TRIGGER_FIELD_NUMBER: _ClassVar[int]
    PROMOTED_FIELD_NUMBER: _ClassVar[int]
    EVAL_BEFORE_FIELD_NUMBER: _ClassVar[int]
    EVAL_AFTER_FIELD_NUMBER: _ClassVar[int]
    GATE_JSON_FIELD_NUMBER: _ClassVar[int]
    HISTORY_FIELD_NUMBER: _ClassVar[int]
    QUEUE_POSITION_FIELD_NUMBER: _ClassVar[int]
    REWARD_FUNCTION_JSON_FIELD_NUMBER: _ClassVar[int]
    id: str
    model: str
    base_version: int
    reward_function_id: str
    method: str
    config_json: str
    status: str
    reason: str
    result_version: int
    created_at: _timestamp_pb2.Timestamp
    updated_at: _timestamp_pb2.Timestamp
    reward_function_version: int
    trigger: str
    promoted: bool
    eval_before: _containers.ScalarMap[str, float]
    eval_after: _containers.ScalarMap[str, float]
    gate_json: str
    history: _containers.RepeatedCompositeFieldContainer[_events_pb2.TrainingProgress]
    queue_position: int
    reward_function_json: str
    def __init__(self, id: _Optional[str] = ..., model: _Optional[str] = ..., base_version: _Optional[int] = ..., reward_function_id: _Optional[str] = ..., method: _Optional[str] = ..., config_json: _Optional[str] = ..., status: _Optional[str] = ..., reason: _Optional[str] = ..., result_version: _Optional[int] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., reward_function_version: _Optional[int] = ..., trigger: _Optional[str] = ..., promoted: _Optional[bool] = ..., eval_before: _Optional[_Mapping[str, float]] = ..., eval_after: _Optional[_Mapping[str, float]] = ..., gate_json: _Optional[str] = ..., history: _Optional[_Iterable[_Union[_events_pb2.TrainingProgress, _Mapping]]] = ..., queue_position: _Optional[int] = ..., reward_function_json: _Optional[str] = ...) -> None: ...

class CreateJobRequest(_message.Message):
    __slots__ = ("caller", "model", "base_version", "reward_function_id", "method", "config_json", "idempotency_key", "reward_function_version", "reward_function_json")
    CALLER_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    BASE_VERSION_FIELD_NUMBER: _ClassVar[int]
    REWARD_FUNCTION_ID_FIELD_NUMBER: _ClassVar[int]
    METHOD_FIELD_NUMBER: _ClassVar[int]
    CONFIG_JSON_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    REWARD_FUNCTION_VERSION_FIELD_NUMBER: _ClassVar[int]
    REWARD_FUNCTION_JSON_FIELD_NUMBER: _ClassVar[int]
    caller: _common_pb2.Caller
    model: str
    base_version: int
    reward_function_id: str
    method: str
    config_json: str
    idempotency_key: str
    reward_function_version: int
    reward_function_json: str
    def __init__(self, caller: _Optional[_Union[_common_pb2.Caller, _Mapping]] = ..., model: _Optional[str] = ..., base_version: _Optional[int] = ..., reward_function_id: _Optional[str] = ..., method: _Optional[str] = ..., config_json: _Optional[str] = ..., idempotency_key: _Optional[str] = ..., reward_function_version: _Optional[int] = ..., reward_function_json: _Optional[str] = ...) -> None: ...

class GetJobRequest(_message.Message):
    __slots__ = ("caller", "job_id")
    CALLER_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    caller: _common_pb2.Caller
    job_id: str
    def __init__(self, caller: _Optional[_Union[_common_pb2.Caller, _Mapping]] = ..., job_id: _Optional[str] = ...) -> None: ...

class ListJobsRequest(_message.Message):
    __slots__ = ("caller", "page", "model", "status")
    CALLER_FIELD_NUMBER: _ClassVar[int]
    PAGE_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    caller: _common_pb2.Caller
    page: _common_pb2.PageRequest
    model: str
    status: str
    def __init__(self, caller: _Optional[_Union[_common_pb2.Caller, _Mapping]] = ..., page: _Optional[_Union[_common_pb2.PageRequest, _Mapping]] = ..., model: _Optional[str] = ..., status: _Optional[str] = ...) -> None: ...

class ListJobsResponse(_message.Message):
    __slots__ = ("jobs", "page")
    JOBS_FIELD_NUMBER: _ClassVar[int]
    PAGE_FIELD_NUMBER: _ClassVar[int]
    jobs: _containers.RepeatedCompositeFieldContainer[TrainingJob]
    page: _common_pb2.PageInfo
    def __init__(self, jobs: _Optional[_Iterable[_Union[TrainingJob, _Mapping]]] = ..., page: _Optional[_Union[_common_pb2.PageInfo, _Mapping]] = ...) -> None: ...

class TrainingPolicy(_message.Message):
    __slots__ = ("model", "enabled", "every_n_rewards", "every_minutes", "min_rewards", "method", "reward_function_id", "reward_function_version", "config_json", "reward_function_json", "pending_rewards", "last_triggered_at")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    ENABLED_FIELD_NUMBER: _ClassVar[int]
    EVERY_N_REWARDS_FIELD_NUMBER: _ClassVar[int]
    EVERY_MINUTES_FIELD_NUMBER: _ClassVar[int]
    MIN_REWARDS_FIELD_NUMBER: _ClassVar[int]
    METHOD_FIELD_NUMBER: _ClassVar[int]
    REWARD_FUNCTION_ID_FIELD_NUMBER: _ClassVar[int]
    REWARD_FUNCTION_VERSION_FIELD_NUMBER: _ClassVar[int]
    CONFIG_JSON_FIELD_NUMBER: _ClassVar[int]
    REWARD_FUNCTION_JSON_FIELD_NUMBER: _ClassVar[int]
    PENDING_REWARDS_FIELD_NUMBER: _ClassVar[int]
    LAST_TRIGGERED_AT_FIELD_NUMBER: _ClassVar[int]
    model: str
    enabled: bool
    every_n_rewards: int
    every_minutes: int
    min_rewards: int
    method: str
    reward_function_id: str
    reward_function_version: int
    config_json: str
    reward_function_json: str
    pending_rewards: int
    last_triggered_at: _timestamp_pb2.Timestamp
    def __init__(self, model: _Optional[str] = ..., enabled: _Optional[bool] = ..., every_n_rewards: _Optional[int] = ..., every_minutes: _Optional[int] = ..., min_rewards: _Optional[int] = ..., method: _Optional[str] = ..., reward_function_id: _Optional[str] = ..., reward_function_version: _Optional[int] = ..., config_json: _Optional[str] = ..., reward_function_json: _Optional[str] = ..., pending_rewards: _Optional[int] = ..., last_triggered_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class GetPolicyRequest(_message.Message):
    __slots__ = ("caller", "model")
    CALLER_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    caller: _common_pb2.Caller
    model: str
    def __init__(self, caller: _Optional[_Union[_common_pb2.Caller, _Mapping]] = ..., model: _Optional[str] = ...) -> None: ...

class PutPolicyRequest(_message.Message):
    __slots__ = ("caller", "policy")
    CALLER_FIELD_NUMBER: _ClassVar[int]
    POLICY_FIELD_NUMBER: _ClassVar[int]
    caller: _common_pb2.Caller
    policy: TrainingPolicy
    def __init__(self, caller: _Optional[_Union[_common_pb2.Caller, _Mapping]] = ..., policy: _Optional[_Union[TrainingPolicy, _Mapping]] = ...) -> None: ...

class Finetune(_message.Message):
    __slots__ = ("finetune_id", "name", "rank", "step", "created_at", "updated_at", "model")
    FINETUNE_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    RANK_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    finetune_id: str
    name: str
    rank: int
    step: int
    created_at: _timestamp_pb2.Timestamp
    updated_at: _timestamp_pb2.Timestamp
    model: str
    def __init__(self, finetune_id: _Optional[str] = ..., name: _Optional[str] = ..., rank: _Optional[int] = ..., step: _Optional[int] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., model: _Optional[str] = ...) -> None: ...

class CreateFinetuneRequest(_message.Message):
    __slots__ = ("caller", "name", "rank")
    CALLER_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    RANK_FIELD_NUMBER: _ClassVar[int]
    caller: _common_pb2.Caller
    name: str
    rank: int
    def __init__(self, caller: _Optional[_Union[_common_pb2.Caller, _Mapping]] = ..., name: _Optional[str] = ..., rank: _Optional[int] = ...) -> None: ...

class FinetuneRequest(_message.Message):
    __slots__ = ("caller", "finetune_id")
    CALLER_FIELD_NUMBER: _ClassVar[int]
    FINETUNE_ID_FIELD_NUMBER: _ClassVar[int]
    caller: _common_pb2.Caller
    finetune_id: str
    def __init__(self, caller: _Optional[_Union[_common_pb2.Caller, _Mapping]] = ..., finetune_id: _Optional[str] = ...) -> None: ...

class ListFinetunesRequest(_message.Message):
    __slots__ = ("caller",)
    CALLER_FIELD_NUMBER: _ClassVar[int]
    caller: _common_pb2.Caller
    def __init__(self, caller: _Optional[_Union[_common_pb2.Caller, _Mapping]] = ...) -> None: ...

class ListFinetunesResponse(_message.Message):
    __slots__ = ("finetunes",)
    FINETUNES_FIELD_NUMBER: _ClassVar[int]
    finetunes: _containers.RepeatedCompositeFieldContainer[Finetune]
    def __init__(self, finetunes: _Optional[_Iterable[_Union[Finetune, _Mapping]]] = ...) -> None: ...

class TuningCall(_message.Message):
    __slots__ = ("caller", "finetune_id", "body_json")
    CALLER_FIELD_NUMBER: _ClassVar[int]
    FINETUNE_ID_FIELD_NUMBER: _ClassVar[int]
    BODY_JSON_FIELD_NUMBER: _ClassVar[int]
    caller: _common_pb2.Caller
    finetune_id: str
    body_json: str
    def __init__(self, caller: _Optional[_Union[_common_pb2.Caller, _Mapping]] = ..., finetune_id: _Optional[str] = ..., body_json: _Optional[str] = ...) -> None: ...

class TuningReply(_message.Message):
    __slots__ = ("body_json",)
    BODY_JSON_FIELD_NUMBER: _ClassVar[int]
    body_json: str
    def __init__(self, body_json: _Optional[str] = ...) -> None: ...

class Checkpoint(_message.Message):
    __slots__ = ("checkpoint_id", "finetune_id", "step", "version", "created_at")
    CHECKPOINT_ID_FIELD_NUMBER: _ClassVar[int]
    FINETUNE_ID_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    checkpoint_id: str
    finetune_id: str
    step: int
    version: int
    created_at: _timestamp_pb2.Timestamp
    def __init__(self, checkpoint_id: _Optional[str] = ..., finetune_id: _Optional[str] = ..., step: _Optional[int] = ..., version: _Optional[int] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class CheckpointRequest(_message.Message):
    __slots__ = ("caller", "finetune_id", "step")
    CALLER_FIELD_NUMBER: _ClassVar[int]
    FINETUNE_ID_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    caller: _common_pb2.Caller
    finetune_id: str
    step: int
    def __init__(self, caller: _Optional[_Union[_common_pb2.Caller, _Mapping]] = ..., finetune_id: _Optional[str] = ..., step: _Optional[int] = ...) -> None: ...

class ListCheckpointsResponse(_message.Message):
    __slots__ = ("checkpoints",)
    CHECKPOINTS_FIELD_NUMBER: _ClassVar[int]
    checkpoints: _containers.RepeatedCompositeFieldContainer[Checkpoint]
    def __init__(self, checkpoints: _Optional[_Iterable[_Union[Checkpoint, _Mapping]]] = ...) -> None: ...
