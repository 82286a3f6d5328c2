"""The dashboard page: the portfolio at ``/`` and one milestone at ``/milestones/{id}``, rendered
on the server from the live state (Jinja2 templates, inline SVG charts, no JavaScript). Links name
a milestone by its id percent-encoded whole, '/' too (``live.records.milestone_path``), and lead
back by a relative path, so the page works under any prefix a proxy serves it at."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from slipcast.core.contracts import live_figures
from slipcast.live.records import milestone_path
from slipcast.scoring.forecast import model_ref
from slipcast.serving.charts import bar, history_chart
from slipcast.serving.dependencies import SettingsDep, authorized

router = APIRouter(tags=["page"], include_in_schema=False, dependencies=[Depends(authorized)])
templates = Jinja2Templates(directory=Path(__file__).parent.parent / "templates")
templates.env.globals["milestone_path"] = milestone_path


@router.get("/", response_class=HTMLResponse)
def portfolio_page(request: Request, settings: SettingsDep):
    """The open milestones, riskiest first, and the teams."""
    live = request.app.state.live
    state = live.get()
    bands = sorted(settings.serving.risk_bands, key=settings.serving.risk_bands.__getitem__)
    context = {"state": state, "bands": bands,
               "bar": lambda p, b: bar(p, b, settings.serving.risk_bands)}
    if state is None:
        context["why"] = ("no store configured (serving.store, or `slipcast serve --store DIR`)" if live.store is None
                          else live.error or "the live state is being built")
    else:
        context["model"] = model_ref(state.model)
        context["monitor"] = live_figures(settings.resolve(settings.monitoring.report_dir))
        context["metrics"] = {k: state.model.metadata.get("metrics", {}).get(k) for k in ("brier_skill", "ece")}
    return templates.TemplateResponse(request, "portfolio.html", context)


def _back_to_root(request: Request) -> str:
    """The relative link from a milestone's page to the portfolio: one ``../`` per segment of the
    path as sent after ``/milestones/`` (an id with its slashes left unencoded has several)."""
    raw = (request.scope.get("raw_path") or request.url.path.encode()).decode("latin-1")
    return "../" * (1 + raw.split("/milestones/", 1)[-1].count("/"))


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
        "chart": history_chart(points, settings.serving.risk_bands), "home": _back_to_root(request)})
