"""The Leg contract's two ways in for caller audio: the inbound queue, or a connected consumer."""
from __future__ import annotations

import numpy as np

from media.frames import AudioFrame
from legs import MemoryLeg


def frame(value: int) -> AudioFrame:
    return AudioFrame(np.full(160, value, dtype=np.int16), 8000)


async def test_a_consumer_gets_queued_frames_first_then_every_new_one_and_can_hand_back_to_the_queue() -> None:
    leg = MemoryLeg(8000)
    heard: list[int] = []
    tapped: list[int] = []

    class Tap:
        def add_caller(self, f: AudioFrame) -> None:
            tapped.append(int(f.samples[0]))

        def add_agent(self, f: AudioFrame) -> None:
            pass

    leg.attach_tap(Tap())
    leg.deliver_audio(frame(1))
    leg.deliver_audio(frame(2))
    leg.consume(lambda f: heard.append(int(f.samples[0])))
    assert heard == [1, 2] and leg.inbound.empty()
    leg.deliver_audio(frame(3))
    assert heard == [1, 2, 3] and leg.inbound.empty()
    leg.consume(None)
    leg.deliver_audio(frame(4))
    assert heard == [1, 2, 3] and int(leg.inbound.get_nowait().samples[0]) == 4
    assert tapped == [1, 2, 3, 4]  # the recorder sees every frame whichever way it went
    await leg.close()

