"""Dependencies between milestones declared beside the tracker's links: the settings' own
(``programs.dependencies``) and the API's, which ``PUT /v1/dependencies`` replaces whole (kept by
``live.declarations``; the live state is rebuilt with them, in its dependency graph, within
``serving.reload_seconds``). A blocker the store does not hold is kept as an external edge."""

from __future__ import annotations

from fastapi import APIRouter, Depends, HTTPException

from slipcast.core.errors import FieldError
from slipcast.core.settings import DependencyDeclaration, Settings
from slipcast.live.declarations import DeclarationsError, change_declarations, read_declarations
from slipcast.serving.dependencies import SettingsDep, authorized
from slipcast.serving.schemas import DeclaredDependency, DependenciesIn, DependencyList

router = APIRouter(prefix="/v1/dependencies", tags=["programs"], dependencies=[Depends(authorized)])


def _listed(settings: Settings, api: list[DependencyDeclaration]) -> DependencyList:
    return DependencyList(items=[DeclaredDependency(**d.model_dump(), source="settings")
                                 for d in settings.programs.dependencies]
                          + [DeclaredDependency(**d.model_dump(), source="api") for d in api])


@router.get("", response_model=DependencyList)
def dependencies(settings: SettingsDep) -> DependencyList:
    """The declared dependencies: the settings' and the API's (as declared; the live state holds
    the API's from its next refresh)."""
    try:
        return _listed(settings, read_declarations(settings).dependencies)
    except DeclarationsError as exc:
        raise HTTPException(503, str(exc)) from None


@router.put("", response_model=DependencyList)
def declare_dependencies(body: DependenciesIn, settings: SettingsDep) -> DependencyList:
    """Replace every dependency the API declared by these (an empty list takes them all back). Each
    joins two milestones once; one the settings declare already is refused. Answers the declared
    dependencies, the settings' and these."""
    seen = {(d.blocker, d.dependent) for d in settings.programs.dependencies}
    for i, d in enumerate(body.dependencies):
        if (d.blocker, d.dependent) in seen:
            raise FieldError(("body", "dependencies", i), f"{d.dependent!r} waiting on {d.blocker!r} is declared "
                                                         "already (in the settings or earlier in this list)")
        seen.add((d.blocker, d.dependent))
    declared = [DependencyDeclaration(blocker=d.blocker, dependent=d.dependent) for d in body.dependencies]
    try:
        change_declarations(settings, lambda current: current.model_copy(update={"dependencies": declared}))
    except DeclarationsError as exc:
        raise HTTPException(503, str(exc)) from None
    return _listed(settings, declared)
