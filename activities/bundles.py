"""Store reads a workflow needs: the `resolve_bundle` activity.

A schedule that follows "the latest version at each firing" starts its run without a
bundle; the run's first act is this activity, which pins whatever the definition is
at that moment. A definition that no longer exists fails the run (not retried).
"""

from __future__ import annotations

from temporalio import activity
from temporalio.exceptions import ApplicationError

from duratask.store.definitions import DefinitionStore, NotFound
from workflows import contracts
from workflows.models import DefinitionBundle, ResolveBundleRequest


class StoreActivities:
    def __init__(self, store: DefinitionStore) -> None:
        self.store = store

    @activity.defn(name=contracts.RESOLVE_BUNDLE_ACTIVITY)
    async def resolve_bundle(self, req: ResolveBundleRequest) -> DefinitionBundle:
        try:
            return await self.store.bundle(req.definition_id, req.version)
        except NotFound as e:
            raise ApplicationError(
                str(e), type=contracts.E_DEFINITION_NOT_FOUND, non_retryable=True
            ) from None
