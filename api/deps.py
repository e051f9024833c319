"""Dependencies, as `Annotated` aliases routers declare in their signatures.

The Temporal client and the store are created once in the app's lifespan; a request
that needs Temporal while it is unreachable gets a 503 naming the address, and the
next request tries to connect again. `RunsDep` is the one RunService dependency every
router declares: it acts for the authenticated caller (duratask/access.py).

The dependencies are `async def` although they do no I/O: FastAPI runs a plain `def`
dependency in its thread pool, a thread round trip each, several per request
(bench/__main__.py measured them as most of the gateway's cost per run start).
"""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import Depends, Header, Request
from starlette.concurrency import run_in_threadpool
from temporalio.client import Client

from api.auth import Authenticator, Principal, require_scope
from api.definitions_service import DefinitionService
from api.errors import unavailable
from api.runs_service import RunService
from duratask.settings import Settings
from duratask.store.definitions import DefinitionStore
from worker.client import connect


async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_store(request: Request) -> DefinitionStore:
    store: DefinitionStore = request.app.state.store
    return store


async def get_temporal(request: Request) -> Client:
    state = request.app.state
    if state.temporal is None:
        async with state.temporal_lock:
            if state.temporal is None:
                try:
                    state.temporal = await asyncio.wait_for(connect(state.settings), 5)
                except Exception as e:
                    raise unavailable(
                        f"Temporal at {state.settings.temporal_address} is unreachable: {e}"
                    ) from None
    client: Client = state.temporal
    return client


async def get_principal(request: Request, authorization: str | None = Header(None)) -> Principal:
    auth: Authenticator = request.app.state.auth
    if auth.settings.jwt_jwks_url:  # may fetch the key set over HTTP: off the event loop
        return await run_in_threadpool(auth.authenticate, authorization)
    return auth.authenticate(authorization)


def _scoped(scope: str):  # type: ignore[no-untyped-def]
    async def dep(principal: Annotated[Principal, Depends(get_principal)]) -> Principal:
        require_scope(principal, scope)
        return principal

    return dep


SettingsDep = Annotated[Settings, Depends(get_settings)]
StoreDep = Annotated[DefinitionStore, Depends(get_store)]
TemporalDep = Annotated[Client, Depends(get_temporal)]
PrincipalDep = Annotated[Principal, Depends(get_principal)]
Reader = Annotated[Principal, Depends(_scoped("tasks:read"))]
Writer = Annotated[Principal, Depends(_scoped("tasks:write"))]
Approver = Annotated[Principal, Depends(_scoped("tasks:approve"))]
Admin = Annotated[Principal, Depends(_scoped("tasks:admin"))]


async def get_runs(
    client: TemporalDep, store: StoreDep, settings: SettingsDep, who: PrincipalDep
) -> RunService:
    return RunService(client, store, settings, who)


RunsDep = Annotated[RunService, Depends(get_runs)]


async def get_definitions(store: StoreDep, who: PrincipalDep) -> DefinitionService:
    return DefinitionService(store, who)


DefinitionsDep = Annotated[DefinitionService, Depends(get_definitions)]
