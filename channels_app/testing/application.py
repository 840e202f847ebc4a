from __future__ import annotations

from typing import Any

from asgiref.testing import ApplicationCommunicator as BaseApplicationCommunicator

from ..db import closing_disabled
from ..types import ASGIApp, Message, Receive, Scope, Send


def _keeping_connections(application: Any) -> ASGIApp:
    """Run ``application`` with connection closing switched off.

    Tests run inside a transaction (Django's ``TestCase``); closing the
    connection from a consumer would end it.  The flag lives in the
    application task's context, so the threads it calls into see it too.
    """

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        closing_disabled.set(True)
        return await application(scope, receive, send)  # type: ignore[no-any-return]

    return app


class ApplicationCommunicator(BaseApplicationCommunicator):
    """asgiref's communicator, safe to use inside Django test transactions.

    ``receive_output`` and ``wait`` raise ``asyncio.TimeoutError`` after their
    timeout instead of hanging, and re-raise any exception the application hit.
    """

    def __init__(self, application: Any, scope: Scope) -> None:
        super().__init__(  # type: ignore[no-untyped-call]
            _keeping_connections(application), scope
        )

    # asgiref's methods, typed (asgiref leaves them unannotated).

    async def send_input(self, message: Message) -> None:
        await super().send_input(message)  # type: ignore[no-untyped-call]

    async def receive_output(self, timeout: float = 1) -> Message:
        message: Message = await super().receive_output(timeout)  # type: ignore[no-untyped-call]
        return message

    async def receive_nothing(
        self, timeout: float = 0.1, interval: float = 0.01
    ) -> bool:
        nothing: bool = await super().receive_nothing(timeout, interval)  # type: ignore[no-untyped-call]
        return nothing

    async def wait(self, timeout: float = 1) -> None:
        await super().wait(timeout)  # type: ignore[no-untyped-call]
