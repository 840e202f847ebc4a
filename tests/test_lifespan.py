"""ProtocolTypeRouter answers the ASGI lifespan scope with the project's hooks."""

import threading

from channels_app.routing import ProtocolTypeRouter
from channels_app.testing import ApplicationCommunicator

LIFESPAN = {"type": "lifespan", "asgi": {"version": "3.0"}}


async def run_phase(comm, phase):
    await comm.send_input({"type": f"lifespan.{phase}"})
    return await comm.receive_output(1)


async def test_hooks_run_in_order_at_startup_and_shutdown():
    calls = []
    loop_thread = threading.get_ident()

    async def open_pool():
        calls.append("open pool")

    def warm_cache():
        # Plain functions run off the event loop, so they may block.
        calls.append(("warm cache", threading.get_ident() != loop_thread))

    async def close_pool():
        calls.append("close pool")

    router = ProtocolTypeRouter(
        {}, on_startup=[open_pool, warm_cache], on_shutdown=[close_pool]
    )
    comm = ApplicationCommunicator(router, LIFESPAN)
    assert await run_phase(comm, "startup") == {"type": "lifespan.startup.complete"}
    assert calls == ["open pool", ("warm cache", True)]
    assert await run_phase(comm, "shutdown") == {"type": "lifespan.shutdown.complete"}
    assert calls[-1] == "close pool"
    await comm.wait(1)


async def test_router_without_hooks_still_completes_lifespan():
    comm = ApplicationCommunicator(ProtocolTypeRouter({"http": None}), LIFESPAN)
    assert (await run_phase(comm, "startup"))["type"] == "lifespan.startup.complete"
    assert (await run_phase(comm, "shutdown"))["type"] == "lifespan.shutdown.complete"
    await comm.wait(1)


async def test_hooks_can_be_registered_after_the_router_is_built():
    calls = []
    router = ProtocolTypeRouter({})
    router.on_startup.append(lambda: calls.append("late"))
    comm = ApplicationCommunicator(router, LIFESPAN)
    await run_phase(comm, "startup")
    assert calls == ["late"]


async def test_failing_startup_hook_reports_failure_and_skips_the_rest(caplog):
    calls = []

    def broken():
        raise RuntimeError("database unreachable")

    router = ProtocolTypeRouter({}, on_startup=[broken, lambda: calls.append("never")])
    comm = ApplicationCommunicator(router, LIFESPAN)
    reply = await run_phase(comm, "startup")
    assert reply["type"] == "lifespan.startup.failed"
    assert "database unreachable" in reply["message"]
    assert calls == []
    await comm.wait(1)
    assert "lifespan startup hook failed" in caplog.text


async def test_failing_shutdown_hook_reports_failure():
    async def broken():
        raise ValueError("flush failed")

    comm = ApplicationCommunicator(
        ProtocolTypeRouter({}, on_shutdown=[broken]), LIFESPAN
    )
    await run_phase(comm, "startup")
    reply = await run_phase(comm, "shutdown")
    assert reply["type"] == "lifespan.shutdown.failed"
    assert "flush failed" in reply["message"]


async def test_an_explicit_lifespan_application_takes_over():
    seen = []

    async def own_lifespan(scope, receive, send):
        seen.append(scope["type"])
        await receive()
        await send({"type": "lifespan.startup.complete"})

    router = ProtocolTypeRouter({"lifespan": own_lifespan}, on_startup=[seen.clear])
    comm = ApplicationCommunicator(router, LIFESPAN)
    assert (await run_phase(comm, "startup"))["type"] == "lifespan.startup.complete"
    assert seen == ["lifespan"]
