"""A subscriber that knows nothing of DreamForge's code: plain nats-py only.

Prints one JSON line per message on the subject given (headers + payload as hex),
so a test can prove an outside team can follow model updates.
    python plain_subscriber.py nats://127.0.0.1:4222 'dreamforge.v1.model.updated.>' COUNT
"""

import asyncio
import json
import sys

import nats


async def main(url: str, subject: str, count: int) -> None:
    nc = await nats.connect(url)
    sub = await nc.subscribe(subject)
    print("subscribed", flush=True)
    for _ in range(count):
        msg = await sub.next_msg(timeout=60)
        print(json.dumps({"subject": msg.subject, "headers": msg.headers, "data": msg.data.hex()}), flush=True)
    await nc.close()


asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
