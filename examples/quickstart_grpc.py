"""gRPC quick-start: the four skills, a retry-safe call and a stream through `dreamforge.v1.GatewayService`.

    dreamforge sample photo.png                      # an image the default model knows
    DREAMFORGE_API_KEY=df_... python examples/quickstart_grpc.py photo.png

Reads DREAMFORGE_GRPC (default 127.0.0.1:50050, the gateway's gRPC port) and DREAMFORGE_API_KEY (a key
with scope `app`). The Python stubs come with the `dreamforge` package; other languages generate theirs
from proto/dreamforge/v1/gateway.proto and inference.proto.
"""

from __future__ import annotations

import json
import os
import sys
import uuid
from pathlib import Path

import grpc

from dreamforge.v1 import gateway_pb2_grpc, inference_pb2


def main(path: str) -> None:
    image = inference_pb2.Image(data=Path(path).read_bytes())  # JPEG, PNG or WebP bytes
    auth = (("authorization", f"Bearer {os.environ['DREAMFORGE_API_KEY']}"),)
    with grpc.insecure_channel(os.environ.get("DREAMFORGE_GRPC", "127.0.0.1:50050")) as channel:
        gateway = gateway_pb2_grpc.GatewayServiceStub(channel)  # type: ignore[no-untyped-call]
        caption = gateway.Caption(inference_pb2.CaptionRequest(image=image, length="short"), metadata=auth)
        print("caption:", caption.text, f"({caption.latency_ms:.0f} ms, request {caption.request_id})")

        # With an idempotency key, sending the call again (say, after a timeout) gets the first answer back,
        # served and billed once; metadata `idempotent-replayed: true` says so.
        question = inference_pb2.QueryRequest(image=image, question="What colour is the circle?")
        retry_safe = (*auth, ("idempotency-key", str(uuid.uuid4())))
        answer = gateway.Query(question, metadata=retry_safe)
        again, call = gateway.Query.with_call(question, metadata=retry_safe)
        replayed = dict(call.initial_metadata()).get("idempotent-replayed") == "true"
        print("query:", answer.text)
        print("query again:", again.text, "(replayed, same request id)" if replayed and
              again.request_id == answer.request_id else "(served again)")

        boxes = gateway.Detect(inference_pb2.DetectRequest(image=image, object="orange circle"), metadata=auth)
        print("detect:", json.dumps([{"x_min": b.x_min, "y_min": b.y_min, "x_max": b.x_max, "y_max": b.y_max}
                                     for b in boxes.objects]))  # normalised to [0, 1]
        points = gateway.Point(inference_pb2.PointRequest(image=image, object="orange circle"), metadata=auth)
        print("point:", json.dumps([{"x": p.x, "y": p.y} for p in points.points]))

        print("stream:", end=" ")
        stream = inference_pb2.StreamRequest(query=inference_pb2.QueryRequest(
            image=image, question="What colour is the triangle?"))
        for chunk in gateway.Stream(stream, metadata=auth):
            print(chunk.text, end="", flush=True)
        print()


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "photo.png")
