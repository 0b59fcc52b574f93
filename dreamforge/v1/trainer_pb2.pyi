import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from dreamforge.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class TrainingJob(_message.Message):
    __slots__ = ("id", "model", "base_version", "reward_function_id", "method", "config_json", "status", "reason", "result_version", "created_at", "updated_at")
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
    def __init__(self, id: _Optional[str] = ..., model: _Optional[str] = ..., base_version: _Optional[int] = ..., reward_function_id: _Optional[str] = ..., method: _Optional[str] = ..., config_json: _Optional[str] = ..., status: _Optional[str] = ..., reason: _Optional[str] = ..., result_version: _Optional[int] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class CreateJobRequest(_message.Message):
    __slots__ = ("caller", "model", "base_version", "reward_function_id", "method", "config_json", "idempotency_key")
    CALLER_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    BASE_VERSION_FIELD_NUMBER: _ClassVar[int]
    REWARD_FUNCTION_ID_FIELD_NUMBER: _ClassVar[int]
    METHOD_FIELD_NUMBER: _ClassVar[int]
    CONFIG_JSON_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    caller: _common_pb2.Caller
    model: str
    base_version: int
    reward_function_id: str
    method: str
    config_json: str
    idempotency_key: str
    def __init__(self, caller: _Optional[_Union[_common_pb2.Caller, _Mapping]] = ..., model: _Optional[str] = ..., base_version: _Optional[int] = ..., reward_function_id: _Optional[str] = ..., method: _Optional[str] = ..., config_json: _Optional[str] = ..., idempotency_key: _Optional[str] = ...) -> None: ...

class GetJobRequest(_message.Message):
    __slots__ = ("caller", "job_id")
    CALLER_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    caller: _common_pb2.Caller
    job_id: str
    def __init__(self, caller: _Optional[_Union[_common_pb2.Caller, _Mapping]] = ..., job_id: _Optional[str] = ...) -> None: ...

class ListJobsRequest(_message.Message):
    __slots__ = ("caller", "page")
    CALLER_FIELD_NUMBER: _ClassVar[int]
    PAGE_FIELD_NUMBER: _ClassVar[int]
    caller: _common_pb2.Caller
    page: _common_pb2.PageRequest
    def __init__(self, caller: _Optional[_Union[_common_pb2.Caller, _Mapping]] = ..., page: _Optional[_Union[_common_pb2.PageRequest, _Mapping]] = ...) -> None: ...

class ListJobsResponse(_message.Message):
    __slots__ = ("jobs", "page")
    JOBS_FIELD_NUMBER: _ClassVar[int]
    PAGE_FIELD_NUMBER: _ClassVar[int]
    jobs: _containers.RepeatedCompositeFieldContainer[TrainingJob]
    page: _common_pb2.PageInfo
    def __init__(self, jobs: _Optional[_Iterable[_Union[TrainingJob, _Mapping]]] = ..., page: _Optional[_Union[_common_pb2.PageInfo, _Mapping]] = ...) -> None: ...

class TrainingPolicy(_message.Message):
    __slots__ = ("model", "enabled", "every_n_rewards", "every_minutes", "min_rewards", "method", "reward_function_id")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    ENABLED_FIELD_NUMBER: _ClassVar[int]
    EVERY_N_REWARDS_FIELD_NUMBER: _ClassVar[int]
    EVERY_MINUTES_FIELD_NUMBER: _ClassVar[int]
    MIN_REWARDS_FIELD_NUMBER: _ClassVar[int]
    METHOD_FIELD_NUMBER: _ClassVar[int]
    REWARD_FUNCTION_ID_FIELD_NUMBER: _ClassVar[int]
    model: str
    enabled: bool
    every_n_rewards: int
    every_minutes: int
    min_rewards: int
    method: str
    reward_function_id: str
    def __init__(self, model: _Optional[str] = ..., enabled: _Optional[bool] = ..., every_n_rewards: _Optional[int] = ..., every_minutes: _Optional[int] = ..., min_rewards: _Optional[int] = ..., method: _Optional[str] = ..., reward_function_id: _Optional[str] = ...) -> None: ...

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
