"""The dashboard page: the portfolio at ``/``, one milestone at ``/milestones/{id}`` and one
program at ``/programs/{id}``, rendered on the server from the live state (Jinja2 templates, inline
SVG charts, no JavaScript). Links name a milestone or a program by its id percent-encoded whole,
'/' too (``live.records.milestone_path``, ``program_path``), and lead back by a relative path, so
the page works under any prefix a proxy serves it at."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from slipcast.core.contracts import live_figures
from slipcast.live.records import milestone_path, program_path
from slipcast.scoring.forecast import model_ref
from slipcast.serving.charts import bar, history_chart
from slipcast.serving.dependencies import SettingsDep, authorized, why_none
from slipcast.serving.formats import day, percent
from slipcast.serving.program_graph import edge_styles, program_graph

router = APIRouter(tags=["page"], include_in_schema=False, dependencies=[Depends(authorized)])
templates = Jinja2Templates(directory=Path(__file__).parent.parent / "templates")
templates.env.globals.update(milestone_path=milestone_path, program_path=program_path)
templates.env.filters.update(percent=percent, day=day)


@router.get("/", response_class=HTMLResponse)
def portfolio_page(request: Request, settings: SettingsDep):
    """The open milestones, riskiest first, the programs and the teams."""
    live = request.app.state.live
    state = live.get()
    bands = sorted(settings.serving.risk_bands, key=settings.serving.risk_bands.__getitem__)
    context = {"state": state, "bands": bands, "sync": request.app.state.autosync.status(),
               "bar": lambda p, b: bar(p, b, settings.serving.risk_bands)}
    if state is None:
        context["why"] = why_none(live)
    else:
        context["model"] = model_ref(state.model)
        context["monitor"] = live_figures(settings.resolve(settings.monitoring.report_dir))
        context["metrics"] = {k: state.model.metadata.get("metrics", {}).get(k) for k in ("brier_skill", "ece")}
    return templates.TemplateResponse(request, "portfolio.html", context)


def _back_to_root(request: Request, section: str) -> str:
    """The relative link from a milestone's or a program's page to the portfolio: one ``../`` per
    segment of the path as sent after ``/<section>/`` (an id with its slashes left unencoded has
    several)."""
    raw = (request.scope.get("raw_path") or request.url.path.encode()).decode("latin-1")
    return "../" * (1 + raw.split(f"/{section}/", 1)[-1].count("/"))


@router.get("/milestones/{milestone_id:path}", response_class=HTMLResponse)
def milestone_page(milestone_id: str, request: Request, settings: SettingsDep):
    """One open milestone: its forecast, its history chart, drivers, "when" and riskiest tickets.
    The id is percent-decoded and may hold '/'."""
    state = request.app.state.live.get()
    found = None if state is None else state.get(milestone_id)
    if found is None:
        raise HTTPException(404, f"no open milestone {milestone_id!r}")
    points = state.daily(milestone_id, settings)
    return templates.TemplateResponse(request, "milestone.html", {
        "m": found, "model": model_ref(state.model), "tickets": state.tickets.get(milestone_id, [])[:10],
        "chart": history_chart(points, settings.serving.risk_bands), "home": _back_to_root(request, "milestones")})


@router.get("/programs/{program_id:path}", response_class=HTMLResponse)
def program_page(program_id: str, request: Request, settings: SettingsDep):
    """One program with an open milestone: its chance of landing beside the independent product,
    its dates, its dependency graph, its milestones by criticality with their ripple, its edges
    and assumptions. The id is percent-decoded and may hold '/'."""
    state = request.app.state.live.get()
    found = None if state is None else state.program(program_id)
    if found is None:
        raise HTTPException(404, f"no program {program_id!r} with an open milestone")
    return templates.TemplateResponse(request, "program.html", {
        "p": found, "graph": program_graph(found), "edges": list(zip(found.edges, edge_styles(found))),
        "chart": history_chart(state.program_history(program_id, settings), settings.serving.risk_bands),
        "ripple_days": settings.programs.ripple_days,
        "listed": {m.milestone_id for m in found.milestones if state.get(m.milestone_id) is not None},
        "home": _back_to_root(request, "programs")})
