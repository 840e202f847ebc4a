from __future__ import annotations

from typing import Any

from asgiref.testing import ApplicationCommunicator as BaseApplicationCommunicator

from ..db import closing_disabled
from ..types import Scope


def _keeping_connections(application: Any) -> Any:
    """Run ``application`` with connection closing switched off.

    Tests run inside a transaction (Django's ``TestCase``); closing the
    connection from a consumer would end it.  The flag lives in the
    application task's context, so the threads it calls into see it too.
    """

    async def app(scope, receive, send):
        closing_disabled.set(True)
        return await application(scope, receive, send)

    return app


class ApplicationCommunicator(BaseApplicationCommunicator):
    """asgiref's communicator, safe to use inside Django test transactions.

    ``receive_output`` and ``wait`` raise ``asyncio.TimeoutError`` after their
    timeout instead of hanging, and re-raise any exception the application hit.
    """

    def __init__(self, application: Any, scope: Scope) -> None:
        super().__init__(_keeping_connections(application), scope)
