"""mdx.interrupts: a signal inside `deferred()` waits for a safe point; outside it interrupts at once."""

from __future__ import annotations

import os
import signal

import pytest

from mdx import interrupts


@pytest.fixture
def handler_installed():
    previous = signal.signal(signal.SIGUSR1, interrupts.handler)
    yield
    signal.signal(signal.SIGUSR1, previous)


def test_signal_outside_deferred_interrupts_at_once(handler_installed) -> None:
    with pytest.raises(KeyboardInterrupt):
        os.kill(os.getpid(), signal.SIGUSR1)
        for _ in range(10**6):  # the handler runs at the next bytecode
            pass


def test_signal_inside_deferred_waits_for_the_safe_point_then_raises_once(handler_installed) -> None:
    reached = []
    with pytest.raises(KeyboardInterrupt), interrupts.deferred():
        os.kill(os.getpid(), signal.SIGUSR1)
        for _ in range(10**5):
            pass
        reached.append("after the signal")  # deferred: the code between safe points runs on
        interrupts.safe_point()
        reached.append("after the safe point")
    assert reached == ["after the signal"]
    interrupts.safe_point()  # nothing pending any more


def test_signal_inside_deferred_without_safe_point_raises_when_the_block_ends(handler_installed) -> None:
    done = []
    with pytest.raises(KeyboardInterrupt):
        with interrupts.deferred():
            with interrupts.deferred():  # nested: only the outermost end raises
                os.kill(os.getpid(), signal.SIGUSR1)
                for _ in range(10**5):
                    pass
            done.append("inner ended")
        done.append("outer ended")
    assert done == ["inner ended"]


def test_signal_during_calibration_stops_the_representative_dataset_at_the_next_image(handler_installed) -> None:
    """The converter draws calibration images from its own Python loop: a pending signal is raised there."""
    import numpy as np

    from mdx.quantize.calibration import CalibrationSet

    calibration = CalibrationSet(inputs=np.zeros((3, 4, 4, 3), np.float32), labels=np.zeros(3, np.int64),
                                 class_names=("a",), paths=("x", "y", "z"), skipped=(), folder="site", requested=3)
    drawn = []
    with pytest.raises(KeyboardInterrupt), interrupts.deferred():
        for sample in calibration.representative_dataset()():
            drawn.append(sample)
            os.kill(os.getpid(), signal.SIGUSR1)
            for _ in range(10**5):
                pass
    assert len(drawn) == 1
