"""`python -m bench.grpc_retries`: how gRPC's own retry policy behaves, as fusion_service/resilience.py relies on it.

Over loopback against a throw-away server that fails a set number of attempts with UNAVAILABLE, it prints:
the calls that hang until their deadline at each initial back-off (grpc/grpc#41036, the reason for
MIN_BACKOFF_S); what a retry whose back-off would pass the deadline costs (grpc/grpc#39622); and what calls
to a server that refuses connections cost with and without retries (why the circuit breaker is not needed
for that case). Rerun it after upgrading grpcio: when the hangs are gone, MIN_BACKOFF_S can go too.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time

import grpc

from fusion_service.resilience import RetryPolicy

SERVICE, METHOD = "bench.Flaky", "Call"
PATH = f"/{SERVICE}/{METHOD}"


class FlakyServer:
    """Fails the next `failures` attempts with UNAVAILABLE, then answers; counts attempts."""

    def __init__(self):
        self.failures = 0
        self.attempts = 0
        self._server = grpc.aio.server()
        handler = grpc.unary_unary_rpc_method_handler(self._call)
        self._server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, {METHOD: handler}),))
        self.port = self._server.add_insecure_port("127.0.0.1:0")

    async def _call(self, request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        self.attempts += 1
        if self.failures > 0:
            self.failures -= 1
            await context.abort(grpc.StatusCode.UNAVAILABLE, "failing on purpose")
        return b"ok"

    async def start(self) -> None:
        await self._server.start()

    async def stop(self) -> None:
        await self._server.stop(0)


def channel(port: int, policy: RetryPolicy | None) -> grpc.aio.Channel:
    options = [("grpc.enable_retries", 1)]
    if policy is not None:
        options.append(("grpc.service_config", policy.service_config(SERVICE, METHOD)))
    return grpc.aio.insecure_channel(f"127.0.0.1:{port}", options=options)


async def timed_call(ch: grpc.aio.Channel, timeout_s: float) -> tuple[str, float]:
    start = time.perf_counter()
    try:
        await ch.unary_unary(PATH)(b"", timeout=timeout_s)
        code = "OK"
    except grpc.aio.AioRpcError as error:
        code = error.code().name
    return code, (time.perf_counter() - start) * 1000


async def hangs_by_backoff(server: FlakyServer, backoffs_s: list[float], calls: int, timeout_s: float) -> None:
    print(f"calls failing twice then answering, 2 retries allowed, {calls} calls each, deadline {timeout_s:g} s:")
    for backoff in backoffs_s:
        # Below RetryPolicy's floor (MIN_BACKOFF_S), which is what is measured here: gRPC's retryPolicy by hand.
        retry_policy = {
            "maxAttempts": 3, "initialBackoff": f"{backoff:.9f}s", "maxBackoff": "1s", "backoffMultiplier": 2,
            "retryableStatusCodes": ["UNAVAILABLE"],
        }
        method_config = {"name": [{"service": SERVICE, "method": METHOD}], "retryPolicy": retry_policy}
        config = json.dumps({"methodConfig": [method_config]})
        async with grpc.aio.insecure_channel(
            f"127.0.0.1:{server.port}", options=[("grpc.enable_retries", 1), ("grpc.service_config", config)]
        ) as ch:
            hung, worst = 0, 0.0
            for _ in range(calls):
                server.failures = 2
                code, ms = await timed_call(ch, timeout_s)
                hung += code == "DEADLINE_EXCEEDED"
                worst = max(worst, ms)
        print(f"  initial back-off {backoff * 1000:6.1f} ms: {hung:3d}/{calls} hung until the deadline, "
              f"slowest {worst:7.1f} ms")


async def backoff_past_deadline(server: FlakyServer) -> None:
    async with channel(server.port, RetryPolicy(retries=2, initial_backoff_s=0.2)) as ch:
        server.failures, server.attempts = 10, 0
        code, ms = await timed_call(ch, 0.1)
        print(f"back-off 200 ms, deadline 100 ms: {code} after {ms:.0f} ms, {server.attempts} attempt(s)")
        server.failures = 0


async def refused_connections(port: int, calls: int) -> None:
    for name, policy in (("with retries (2, 50 ms)", RetryPolicy()), ("without retries", None)):
        async with channel(port, policy) as ch:
            times = [(await timed_call(ch, 2.0))[1] for _ in range(calls)]
        print(f"server refusing connections, {name}: " + ", ".join(f"{t:.1f}" for t in times) + " ms")


async def main(calls: int) -> None:
    server = FlakyServer()
    await server.start()
    await hangs_by_backoff(server, [0.001, 0.002, 0.005, 0.01, 0.05], calls, timeout_s=2.0)
    await backoff_past_deadline(server)
    port = server.port
    await server.stop()
    await refused_connections(port, calls=5)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m bench.grpc_retries", description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=40, help="calls per back-off setting")
    asyncio.run(main(parser.parse_args().calls))
