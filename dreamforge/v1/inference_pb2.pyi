from dreamforge.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Image(_message.Message):
    __slots__ = ("data",)
    DATA_FIELD_NUMBER: _ClassVar[int]
    data: bytes
    def __init__(self, data: _Optional[bytes] = ...) -> None: ...

class Target(_message.Message):
    __slots__ = ("reference",)
    REFERENCE_FIELD_NUMBER: _ClassVar[int]
    reference: str
    def __init__(self, reference: _Optional[str] = ...) -> None: ...

class CaptionRequest(_message.Message):
    __slots__ = ("caller", "request_id", "model", "image", "length", "max_tokens")
    CALLER_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    LENGTH_FIELD_NUMBER: _ClassVar[int]
    MAX_TOKENS_FIELD_NUMBER: _ClassVar[int]
    caller: _common_pb2.Caller
    request_id: str
    model: Target
    image: Image
    length: str
    max_tokens: int
    def __init__(self, caller: _Optional[_Union[_common_pb2.Caller, _Mapping]] = ..., request_id: _Optional[str] = ..., model: _Optional[_Union[Target, _Mapping]] = ..., image: _Optional[_Union[Image, _Mapping]] = ..., length: _Optional[str] = ..., max_tokens: _Optional[int] = ...) -> None: ...

class QueryRequest(_message.Message):
    __slots__ = ("caller", "request_id", "model", "image", "question", "max_tokens")
    CALLER_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    QUESTION_FIELD_NUMBER: _ClassVar[int]
    MAX_TOKENS_FIELD_NUMBER: _ClassVar[int]
    caller: _common_pb2.Caller
    request_id: str
    model: Target
    image: Image
    question: str
    max_tokens: int
    def __init__(self, caller: _Optional[_Union[_common_pb2.Caller, _Mapping]] = ..., request_id: _Optional[str] = ..., model: _Optional[_Union[Target, _Mapping]] = ..., image: _Optional[_Union[Image, _Mapping]] = ..., question: _Optional[str] = ..., max_tokens: _Optional[int] = ...) -> None: ...

class DetectRequest(_message.Message):
    __slots__ = ("caller", "request_id", "model", "image", "object", "max_objects")
    CALLER_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    OBJECT_FIELD_NUMBER: _ClassVar[int]
    MAX_OBJECTS_FIELD_NUMBER: _ClassVar[int]
    caller: _common_pb2.Caller
    request_id: str
    model: Target
    image: Image
    object: str
    max_objects: int
    def __init__(self, caller: _Optional[_Union[_common_pb2.Caller, _Mapping]] = ..., request_id: _Optional[str] = ..., model: _Optional[_Union[Target, _Mapping]] = ..., image: _Optional[_Union[Image, _Mapping]] = ..., object: _Optional[str] = ..., max_objects: _Optional[int] = ...) -> None: ...

class PointRequest(_message.Message):
    __slots__ = ("caller", "request_id", "model", "image", "object", "max_objects")
    CALLER_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    OBJECT_FIELD_NUMBER: _ClassVar[int]
    MAX_OBJECTS_FIELD_NUMBER: _ClassVar[int]
    caller: _common_pb2.Caller
    request_id: str
    model: Target
    image: Image
    object: str
    max_objects: int
    def __init__(self, caller: _Optional[_Union[_common_pb2.Caller, _Mapping]] = ..., request_id: _Optional[str] = ..., model: _Optional[_Union[Target, _Mapping]] = ..., image: _Optional[_Union[Image, _Mapping]] = ..., object: _Optional[str] = ..., max_objects: _Optional[int] = ...) -> None: ...

class ChatMessage(_message.Message):
    __slots__ = ("role", "text", "images")
    ROLE_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    IMAGES_FIELD_NUMBER: _ClassVar[int]
    role: str
    text: str
    images: _containers.RepeatedCompositeFieldContainer[Image]
    def __init__(self, role: _Optional[str] = ..., text: _Optional[str] = ..., images: _Optional[_Iterable[_Union[Image, _Mapping]]] = ...) -> None: ...

class ChatRequest(_message.Message):
    __slots__ = ("caller", "request_id", "model", "messages", "max_tokens", "temperature")
    CALLER_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    MESSAGES_FIELD_NUMBER: _ClassVar[int]
    MAX_TOKENS_FIELD_NUMBER: _ClassVar[int]
    TEMPERATURE_FIELD_NUMBER: _ClassVar[int]
    caller: _common_pb2.Caller
    request_id: str
    model: Target
    messages: _containers.RepeatedCompositeFieldContainer[ChatMessage]
    max_tokens: int
    temperature: float
    def __init__(self, caller: _Optional[_Union[_common_pb2.Caller, _Mapping]] = ..., request_id: _Optional[str] = ..., model: _Optional[_Union[Target, _Mapping]] = ..., messages: _Optional[_Iterable[_Union[ChatMessage, _Mapping]]] = ..., max_tokens: _Optional[int] = ..., temperature: _Optional[float] = ...) -> None: ...

class StreamRequest(_message.Message):
    __slots__ = ("caption", "query", "chat")
    CAPTION_FIELD_NUMBER: _ClassVar[int]
    QUERY_FIELD_NUMBER: _ClassVar[int]
    CHAT_FIELD_NUMBER: _ClassVar[int]
    caption: CaptionRequest
    query: QueryRequest
    chat: ChatRequest
    def __init__(self, caption: _Optional[_Union[CaptionRequest, _Mapping]] = ..., query: _Optional[_Union[QueryRequest, _Mapping]] = ..., chat: _Optional[_Union[ChatRequest, _Mapping]] = ...) -> None: ...

class Box(_message.Message):
    __slots__ = ("x_min", "y_min", "x_max", "y_max")
    X_MIN_FIELD_NUMBER: _ClassVar[int]
    Y_MIN_FIELD_NUMBER: _ClassVar[int]
    X_MAX_FIELD_NUMBER: _ClassVar[int]
    Y_MAX_FIELD_NUMBER: _ClassVar[int]
    x_min: float
    y_min: float
    x_max: float
    y_max: float
    def __init__(self, x_min: _Optional[float] = ..., y_min: _Optional[float] = ..., x_max: _Optional[float] = ..., y_max: _Optional[float] = ...) -> None: ...

class Point(_message.Message):
    __slots__ = ("x", "y")
    X_FIELD_NUMBER: _ClassVar[int]
    Y_FIELD_NUMBER: _ClassVar[int]
    x: float
    y: float
    def __init__(self, x: _Optional[float] = ..., y: _Optional[float] = ...) -> None: ...

class SkillResponse(_message.Message):
    __slots__ = ("request_id", "text", "objects", "points", "model_id", "version", "alias", "latency_ms", "input_tokens", "output_tokens")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    OBJECTS_FIELD_NUMBER: _ClassVar[int]
    POINTS_FIELD_NUMBER: _ClassVar[int]
    MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    ALIAS_FIELD_NUMBER: _ClassVar[int]
    LATENCY_MS_FIELD_NUMBER: _ClassVar[int]
    INPUT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    text: str
    objects: _containers.RepeatedCompositeFieldContainer[Box]
    points: _containers.RepeatedCompositeFieldContainer[Point]
    model_id: str
    version: int
    alias: str
    latency_ms: float
    input_tokens: int
    output_tokens: int
    def __init__(self, request_id: _Optional[str] = ..., text: _Optional[str] = ..., objects: _Optional[_Iterable[_Union[Box, _Mapping]]] = ..., points: _Optional[_Iterable[_Union[Point, _Mapping]]] = ..., model_id: _Optional[str] = ..., version: _Optional[int] = ..., alias: _Optional[str] = ..., latency_ms: _Optional[float] = ..., input_tokens: _Optional[int] = ..., output_tokens: _Optional[int] = ...) -> None: ...

class TextChunk(_message.Message):
    __slots__ = ("text", "completed", "final")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    COMPLETED_FIELD_NUMBER: _ClassVar[int]
    FINAL_FIELD_NUMBER: _ClassVar[int]
    text: str
    completed: bool
    final: SkillResponse
    def __init__(self, text: _Optional[str] = ..., completed: _Optional[bool] = ..., final: _Optional[_Union[SkillResponse, _Mapping]] = ...) -> None: ...

class ListLoadedRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class LoadedAdapter(_message.Message):
    __slots__ = ("model_id", "version", "memory_bytes")
    MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    MEMORY_BYTES_FIELD_NUMBER: _ClassVar[int]
    model_id: str
    version: int
    memory_bytes: int
    def __init__(self, model_id: _Optional[str] = ..., version: _Optional[int] = ..., memory_bytes: _Optional[int] = ...) -> None: ...

class ListLoadedResponse(_message.Message):
    __slots__ = ("adapters", "memory_budget_bytes")
    ADAPTERS_FIELD_NUMBER: _ClassVar[int]
    MEMORY_BUDGET_BYTES_FIELD_NUMBER: _ClassVar[int]
    adapters: _containers.RepeatedCompositeFieldContainer[LoadedAdapter]
    memory_budget_bytes: int
    def __init__(self, adapters: _Optional[_Iterable[_Union[LoadedAdapter, _Mapping]]] = ..., memory_budget_bytes: _Optional[int] = ...) -> None: ...
