from __future__ import annotations

import asyncio

from starlette.types import Message

from serving.fastlane import _read_body, _Replay


def _receiver(messages: list[Message]) -> tuple[list[Message], object]:
    queue = list(messages)

    async def receive() -> Message:
        return queue.pop(0)

    return queue, receive


def test_a_body_in_chunks_is_read_whole_and_replayed_in_order() -> None:
    sent: list[Message] = [
        {"type": "http.request", "body": b'{"recipient_id": ', "more_body": True},
        {"type": "http.request", "body": b'"r1"}', "more_body": False},
        {"type": "http.disconnect"},
    ]
    _, receive = _receiver(sent)
    body, messages = asyncio.run(_read_body(receive))  # type: ignore[arg-type]
    assert body == b'{"recipient_id": "r1"}'
    replay = _Replay(messages, receive)  # type: ignore[arg-type]

    async def drain() -> list[Message]:
        return [await replay() for _ in range(3)]

    assert asyncio.run(drain()) == sent  # what was read, then what the client sends next


def test_a_client_that_leaves_before_its_body_is_passed_on() -> None:
    sent: list[Message] = [
        {"type": "http.request", "body": b"{", "more_body": True},
        {"type": "http.disconnect"},
    ]
    _, receive = _receiver(sent)
    body, messages = asyncio.run(_read_body(receive))  # type: ignore[arg-type]
    assert body is None
    assert messages == sent
