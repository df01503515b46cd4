"""The supervisor's restart policy on a fake stack and clock: back-off, its cap, its reset, deliberate stops."""

from __future__ import annotations

import logging

from scripts.supervisor import RestartPolicy, Supervisor, describe_exit

POLICY = RestartPolicy(initial_delay_s=0.5, max_delay_s=4.0, stable_after_s=30.0)


class FakeStack:
    """Parts that exit when told to; restart() starts them again at the fake clock's time."""

    def __init__(self, clock: "FakeClock", *names: str):
        self.clock = clock
        self.parts = {name: [None, clock()] for name in names}
        self.restarts: list[tuple[str, float]] = []

    def running_parts(self):
        return {name: tuple(state) for name, state in self.parts.items()}

    def restart(self, name: str) -> int:
        self.parts[name] = [None, self.clock()]
        self.restarts.append((name, self.clock()))
        return 1000 + len(self.restarts)

    def exit(self, name: str, code: int = 1) -> None:
        self.parts[name][0] = code


class FakeClock:
    def __init__(self):
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def crash_and_restart(stack: FakeStack, supervisor: Supervisor, clock: FakeClock, name: str, after_s: float) -> float:
    """Let `name` run `after_s`, exit, and be restarted; returns the delay it waited."""
    clock.now += after_s
    stack.exit(name)
    restarts = len(stack.restarts)
    exited_at = clock.now
    while len(stack.restarts) == restarts:
        supervisor.check()
        clock.now += 0.125  # a binary fraction: the delays add up exactly
    return clock.now - 0.125 - exited_at


def test_a_part_that_keeps_crashing_backs_off_doubling_up_to_the_cap_and_the_others_are_left_alone(caplog):
    clock = FakeClock()
    stack = FakeStack(clock, "model-server", "fusion")
    supervisor = Supervisor(stack, POLICY, clock=clock)
    with caplog.at_level(logging.WARNING, logger="local_stack"):
        delays = [crash_and_restart(stack, supervisor, clock, "model-server", after_s=1.0) for _ in range(5)]

    assert delays == [0.5, 1.0, 2.0, 4.0, 4.0]
    assert {name for name, _ in stack.restarts} == {"model-server"}
    assert "model-server exited with code 1 after 1.0 s; restarting it in 0.5 s" in caplog.text
    assert "restarting it in 4.0 s (the longest back-off: it keeps exiting soon after starting)" in caplog.text
    assert "model-server restarted (pid 1001)" in caplog.text


def test_the_back_off_starts_over_after_a_part_ran_stably():
    clock = FakeClock()
    stack = FakeStack(clock, "fusion")
    supervisor = Supervisor(stack, POLICY, clock=clock)
    quick = [crash_and_restart(stack, supervisor, clock, "fusion", after_s=1.0) for _ in range(3)]
    after_a_stable_run = crash_and_restart(stack, supervisor, clock, "fusion", after_s=POLICY.stable_after_s)

    assert quick == [0.5, 1.0, 2.0]
    assert after_a_stable_run == 0.5


def test_a_part_stopped_on_purpose_is_not_restarted():
    clock = FakeClock()
    stack = FakeStack(clock, "fusion", "model-server")
    supervisor = Supervisor(stack, POLICY, clock=clock)
    del stack.parts["model-server"]  # LocalStack.stop(name) forgets the part
    for _ in range(20):
        clock.now += 0.5
        supervisor.check()
    assert stack.restarts == []


def test_exits_are_described_by_code_or_signal():
    assert describe_exit(3) == "code 3"
    assert describe_exit(-9) == "signal SIGKILL"
