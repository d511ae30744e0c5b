"""The RTP jitter buffer: reordering, loss concealment, sequence wrap, drift trimming, underrun."""
from __future__ import annotations

import numpy as np

from media.jitter import MISSING, JitterBuffer


def frame(value: int) -> np.ndarray:
    return np.full(160, value, dtype=np.int16)


def drain(jb: JitterBuffer, n: int) -> list[int | None]:
    out = []
    for _ in range(n):
        f = jb.pop()
        out.append(None if f is None else int(f[0]))
    return out


def test_waits_for_target_depth_then_plays_in_order_despite_reordering():
    jb = JitterBuffer(160, target=3)
    jb.put(100, frame(1))
    assert jb.pop() is None  # not enough buffered yet
    jb.put(102, frame(3))
    jb.put(101, frame(2))
    jb.put(103, frame(4))
    assert drain(jb, 4) == [1, 2, 3, 4]


def test_lost_frame_is_concealed_from_the_previous_one_then_silence():
    jb = JitterBuffer(160, target=1)
    jb.put(10, frame(1000))
    jb.put(12, frame(3000))
    assert drain(jb, 2) == [1000, 800]  # frame 11 lost: the previous frame at 0.8 gain
    assert drain(jb, 1) == [3000]
    assert jb.concealed == 1
    # The sender goes quiet: decaying repeats, then silence, and the consumer still gets a frame per tick.
    assert drain(jb, 5) == [2400, 1500, 750, 0, 0]


def test_late_and_duplicate_packets_are_dropped():
    jb = JitterBuffer(160, target=1)
    jb.put(5, frame(1))
    jb.put(6, frame(2))
    assert drain(jb, 2) == [1, 2]
    jb.put(5, frame(9))  # too late
    jb.put(7, frame(3))
    jb.put(7, frame(9))  # duplicate
    assert drain(jb, 1) == [3]
    assert jb.late == 1 and jb.duplicates == 1


def test_sequence_number_wraps():
    jb = JitterBuffer(160, target=2)
    for i, seq in enumerate([65534, 65535, 0, 1]):
        jb.put(seq, frame(i + 1))
    assert drain(jb, 4) == [1, 2, 3, 4]


def test_faster_sender_is_trimmed_back_to_the_target_delay():
    jb = JitterBuffer(160, target=2, maximum=6)
    for seq in range(10):
        jb.put(seq, frame(seq))
    first = drain(jb, 1)[0]
    assert first == 8  # 10 buffered > maximum: skip to the newest `target` frames
    assert jb.trimmed == 8


def test_reset_starts_a_new_stream():
    jb = JitterBuffer(160, target=1)
    jb.put(500, frame(1))
    assert drain(jb, 1) == [1]
    jb.reset()
    jb.put(20, frame(2))  # a new SSRC with an unrelated sequence number
    assert drain(jb, 1) == [2]


def test_pop_item_hands_out_stored_payloads_and_missing_marks():
    jb = JitterBuffer(160, target=1)
    assert jb.pop_item() is None
    jb.put(1, b"a")
    jb.put(3, b"c")
    assert jb.pop_item() == b"a"
    assert jb.pop_item() is MISSING  # seq 2 lost
    assert jb.pop_item() == b"c"
    jb.played(frame(100))
    assert jb.pop_item() is MISSING and int(jb.conceal()[0]) == 80  # underrun: conceal from the played frame


def test_at_one_frame_a_late_packet_is_not_lost_it_plays_a_tick_later():
    """The RTP session plays from the first frame (signalling/sip/rtp.py): jitter must cost delay, not audio."""
    jb = JitterBuffer(160, target=1)
    jb.put(1, frame(100))
    assert drain(jb, 1) == [100]
    assert drain(jb, 1) == [80]  # packet 2 is late: this tick conceals, without moving past it
    jb.put(2, frame(200))
    jb.put(3, frame(300))
    assert drain(jb, 2) == [200, 300]  # both played, one tick later than they would have been
    assert jb.late == 0 and jb.concealed == 0
