from dreamforge.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ModelUpdated(_message.Message):
    __slots__ = ("meta", "model_id", "model_name", "alias", "is_preview", "version", "previous_version", "action", "artifact_sha256", "actor")
    META_FIELD_NUMBER: _ClassVar[int]
    MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    ALIAS_FIELD_NUMBER: _ClassVar[int]
    IS_PREVIEW_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_VERSION_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    ARTIFACT_SHA256_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    meta: _common_pb2.EventMeta
    model_id: str
    model_name: str
    alias: str
    is_preview: bool
    version: int
    previous_version: int
    action: str
    artifact_sha256: str
    actor: str
    def __init__(self, meta: _Optional[_Union[_common_pb2.EventMeta, _Mapping]] = ..., model_id: _Optional[str] = ..., model_name: _Optional[str] = ..., alias: _Optional[str] = ..., is_preview: _Optional[bool] = ..., version: _Optional[int] = ..., previous_version: _Optional[int] = ..., action: _Optional[str] = ..., artifact_sha256: _Optional[str] = ..., actor: _Optional[str] = ...) -> None: ...

class InferenceCompleted(_message.Message):
    __slots__ = ("meta", "request_id", "model_id", "version", "alias", "skill", "prompt", "image_ref", "output_json", "latency_ms", "key_id")
    META_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    ALIAS_FIELD_NUMBER: _ClassVar[int]
    SKILL_FIELD_NUMBER: _ClassVar[int]
    PROMPT_FIELD_NUMBER: _ClassVar[int]
    IMAGE_REF_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_JSON_FIELD_NUMBER: _ClassVar[int]
    LATENCY_MS_FIELD_NUMBER: _ClassVar[int]
    KEY_ID_FIELD_NUMBER: _ClassVar[int]
    meta: _common_pb2.EventMeta
    request_id: str
    model_id: str
    version: int
    alias: str
    skill: str
    prompt: str
    image_ref: str
    output_json: str
    latency_ms: float
    key_id: str
    def __init__(self, meta: _Optional[_Union[_common_pb2.EventMeta, _Mapping]] = ..., request_id: _Optional[str] = ..., model_id: _Optional[str] = ..., version: _Optional[int] = ..., alias: _Optional[str] = ..., skill: _Optional[str] = ..., prompt: _Optional[str] = ..., image_ref: _Optional[str] = ..., output_json: _Optional[str] = ..., latency_ms: _Optional[float] = ..., key_id: _Optional[str] = ...) -> None: ...

class UsageRecorded(_message.Message):
    __slots__ = ("meta", "request_id", "key_id", "model_id", "version", "alias", "is_preview", "skill", "images", "input_tokens", "output_tokens", "latency_ms")
    META_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    KEY_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    ALIAS_FIELD_NUMBER: _ClassVar[int]
    IS_PREVIEW_FIELD_NUMBER: _ClassVar[int]
    SKILL_FIELD_NUMBER: _ClassVar[int]
    IMAGES_FIELD_NUMBER: _ClassVar[int]
    INPUT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    LATENCY_MS_FIELD_NUMBER: _ClassVar[int]
    meta: _common_pb2.EventMeta
    request_id: str
    key_id: str
    model_id: str
    version: int
    alias: str
    is_preview: bool
    skill: str
    images: int
    input_tokens: int
    output_tokens: int
    latency_ms: float
    def __init__(self, meta: _Optional[_Union[_common_pb2.EventMeta, _Mapping]] = ..., request_id: _Optional[str] = ..., key_id: _Optional[str] = ..., model_id: _Optional[str] = ..., version: _Optional[int] = ..., alias: _Optional[str] = ..., is_preview: _Optional[bool] = ..., skill: _Optional[str] = ..., images: _Optional[int] = ..., input_tokens: _Optional[int] = ..., output_tokens: _Optional[int] = ..., latency_ms: _Optional[float] = ...) -> None: ...

class FeedbackSubmitted(_message.Message):
    __slots__ = ("meta", "feedback_id", "request_id", "rater_id", "kind", "value_json", "other_request_id")
    META_FIELD_NUMBER: _ClassVar[int]
    FEEDBACK_ID_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    RATER_ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    VALUE_JSON_FIELD_NUMBER: _ClassVar[int]
    OTHER_REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    meta: _common_pb2.EventMeta
    feedback_id: str
    request_id: str
    rater_id: str
    kind: str
    value_json: str
    other_request_id: str
    def __init__(self, meta: _Optional[_Union[_common_pb2.EventMeta, _Mapping]] = ..., feedback_id: _Optional[str] = ..., request_id: _Optional[str] = ..., rater_id: _Optional[str] = ..., kind: _Optional[str] = ..., value_json: _Optional[str] = ..., other_request_id: _Optional[str] = ...) -> None: ...

class RewardScored(_message.Message):
    __slots__ = ("meta", "feedback_id", "request_id", "model_id", "version", "reward_function_id", "reward_function_version", "reward", "terms", "skill", "prompt", "image_ref", "output_json", "rejected_output_json", "correction")
    class TermsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    META_FIELD_NUMBER: _ClassVar[int]
    FEEDBACK_ID_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    REWARD_FUNCTION_ID_FIELD_NUMBER: _ClassVar[int]
    REWARD_FUNCTION_VERSION_FIELD_NUMBER: _ClassVar[int]
    REWARD_FIELD_NUMBER: _ClassVar[int]
    TERMS_FIELD_NUMBER: _ClassVar[int]
    SKILL_FIELD_NUMBER: _ClassVar[int]
    PROMPT_FIELD_NUMBER: _ClassVar[int]
    IMAGE_REF_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_JSON_FIELD_NUMBER: _ClassVar[int]
    REJECTED_OUTPUT_JSON_FIELD_NUMBER: _ClassVar[int]
    CORRECTION_FIELD_NUMBER: _ClassVar[int]
    meta: _common_pb2.EventMeta
    feedback_id: str
    request_id: str
    model_id: str
    version: int
    reward_function_id: str
    reward_function_version: int
    reward: float
    terms: _containers.ScalarMap[str, float]
    skill: str
    prompt: str
    image_ref: str
    output_json: str
    rejected_output_json: str
    correction: str
    def __init__(self, meta: _Optional[_Union[_common_pb2.EventMeta, _Mapping]] = ..., feedback_id: _Optional[str] = ..., request_id: _Optional[str] = ..., model_id: _Optional[str] = ..., version: _Optional[int] = ..., reward_function_id: _Optional[str] = ..., reward_function_version: _Optional[int] = ..., reward: _Optional[float] = ..., terms: _Optional[_Mapping[str, float]] = ..., skill: _Optional[str] = ..., prompt: _Optional[str] = ..., image_ref: _Optional[str] = ..., output_json: _Optional[str] = ..., rejected_output_json: _Optional[str] = ..., correction: _Optional[str] = ...) -> None: ...

class TrainingProgress(_message.Message):
    __slots__ = ("meta", "job_id", "model_id", "step", "total_steps", "loss", "reward_mean", "reward_std", "kl", "learning_rate", "samples_per_second", "eta_seconds")
    META_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    TOTAL_STEPS_FIELD_NUMBER: _ClassVar[int]
    LOSS_FIELD_NUMBER: _ClassVar[int]
    REWARD_MEAN_FIELD_NUMBER: _ClassVar[int]
    REWARD_STD_FIELD_NUMBER: _ClassVar[int]
    KL_FIELD_NUMBER: _ClassVar[int]
    LEARNING_RATE_FIELD_NUMBER: _ClassVar[int]
    SAMPLES_PER_SECOND_FIELD_NUMBER: _ClassVar[int]
    ETA_SECONDS_FIELD_NUMBER: _ClassVar[int]
    meta: _common_pb2.EventMeta
    job_id: str
    model_id: str
    step: int
    total_steps: int
    loss: float
    reward_mean: float
    reward_std: float
    kl: float
    learning_rate: float
    samples_per_second: float
    eta_seconds: float
    def __init__(self, meta: _Optional[_Union[_common_pb2.EventMeta, _Mapping]] = ..., job_id: _Optional[str] = ..., model_id: _Optional[str] = ..., step: _Optional[int] = ..., total_steps: _Optional[int] = ..., loss: _Optional[float] = ..., reward_mean: _Optional[float] = ..., reward_std: _Optional[float] = ..., kl: _Optional[float] = ..., learning_rate: _Optional[float] = ..., samples_per_second: _Optional[float] = ..., eta_seconds: _Optional[float] = ...) -> None: ...

class TrainingFinished(_message.Message):
    __slots__ = ("meta", "job_id", "model_id", "version", "promoted", "eval_before", "eval_after")
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
    META_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    PROMOTED_FIELD_NUMBER: _ClassVar[int]
    EVAL_BEFORE_FIELD_NUMBER: _ClassVar[int]
    EVAL_AFTER_FIELD_NUMBER: _ClassVar[int]
    meta: _common_pb2.EventMeta
    job_id: str
    model_id: str
    version: int
    promoted: bool
    eval_before: _containers.ScalarMap[str, float]
    eval_after: _containers.ScalarMap[str, float]
    def __init__(self, meta: _Optional[_Union[_common_pb2.EventMeta, _Mapping]] = ..., job_id: _Optional[str] = ..., model_id: _Optional[str] = ..., version: _Optional[int] = ..., promoted: _Optional[bool] = ..., eval_before: _Optional[_Mapping[str, float]] = ..., eval_after: _Optional[_Mapping[str, float]] = ...) -> None: ...

class TrainingFailed(_message.Message):
    __slots__ = ("meta", "job_id", "model_id", "reason")
    META_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    meta: _common_pb2.EventMeta
    job_id: str
    model_id: str
    reason: str
    def __init__(self, meta: _Optional[_Union[_common_pb2.EventMeta, _Mapping]] = ..., job_id: _Optional[str] = ..., model_id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...
