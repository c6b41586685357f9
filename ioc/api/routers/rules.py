"""Rules over HTTP: the same validation as `ioc rules check`, versioned, live without restart."""

from __future__ import annotations

import datetime as dt
import json
from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, Body, Query, Response
from pydantic import BaseModel

from ioc.api.deps import AdminKey, OperatorKey, ReaderKey, ServiceDep, actor
from ioc.api.errors import ApiError, error_responses
from ioc.rules import RuleBatch, RuleFileError, backtest, rule_from_dict, rule_to_dict
from ioc.rules.model import where_matches
from ioc.storage.devices import device_metas
from ioc.storage.rules import (
    StoredRule,
    delete_rule,
    get_rule,
    history_for_backtest,
    list_rules,
    put_rule,
    rule_history,
)

router = APIRouter(prefix="/rules", tags=["rules"])

BACKTEST_MAX_EVENTS = 2_000_000
RULE_EXAMPLE = {"id": "flood-vi-thanh", "kind": "water_level", "where": {"district": "Vị Thanh"},
                "when": {"op": ">", "value": 1.8}, "for": "5m", "clear": {"op": "<", "value": 1.7},
                "severity": "critical", "message": "Mực nước {value:.2f} m tại {device_name}"}


class RuleOut(BaseModel):
    id: str
    definition: dict[str, Any]
    version: int
    source: str
    updated_at: dt.datetime
    updated_by: str | None


class RuleVersion(BaseModel):
    version: int
    action: str
    definition: dict[str, Any] | None
    changed_by: str | None
    changed_at: dt.datetime


class RuleDetail(RuleOut):
    history: list[RuleVersion]


class RuleList(BaseModel):
    items: list[RuleOut]
    next_cursor: str | None = None


class TransitionOut(BaseModel):
    action: str
    device_id: str
    ts: dt.datetime
    value: float | None
    severity: str
    message: str


class BacktestResult(BaseModel):
    rule_id: str
    events: int
    transitions: list[TransitionOut]


def _out(r: StoredRule) -> RuleOut:
    return RuleOut(id=r.id, definition=r.definition, version=r.version, source=r.source,
                   updated_at=r.updated_at, updated_by=r.updated_by)


def _validated(body: dict[str, Any]) -> dict[str, Any]:
    try:
        return rule_to_dict(rule_from_dict(body))
    except RuleFileError as exc:
        raise ApiError(422, "invalid_rule", [p.format() for p in exc.problems]) from None


@router.get("", response_model=RuleList, responses=error_responses(401, 403))
async def list_all(service: ServiceDep, key: ReaderKey) -> RuleList:
    async with service.api_pool.acquire() as conn:
        return RuleList(items=[_out(r) for r in await list_rules(conn)])


@router.get("/{rule_id}", response_model=RuleDetail, responses=error_responses(401, 403, 404))
async def get_one(rule_id: str, service: ServiceDep, key: ReaderKey) -> RuleDetail:
    async with service.api_pool.acquire() as conn:
        rule = await get_rule(conn, rule_id)
        if rule is None:
            raise ApiError(404, "not_found", f"no rule {rule_id!r}")
        history = [RuleVersion(version=h["version"], action=h["action"],
                               definition=None if h["definition"] is None
                               else json.loads(h["definition"]),
                               changed_by=h["changed_by"], changed_at=h["changed_at"])
                   for h in await rule_history(conn, rule_id)]
    return RuleDetail(**_out(rule).model_dump(), history=history)


@router.post("", response_model=RuleOut, status_code=201,
             responses=error_responses(401, 403, 409, 422))
async def create(service: ServiceDep, key: AdminKey,
                 body: Annotated[dict[str, Any], Body(examples=[RULE_EXAMPLE])]) -> RuleOut:
    definition = _validated(body)
    async with service.api_pool.acquire() as conn, conn.transaction():
        if await get_rule(conn, definition["id"]) is not None:
            raise ApiError(409, "conflict", f"rule {definition['id']!r} exists; PUT to change it")
        stored = await put_rule(conn, definition, source="api", actor=actor(key))
    await service.reload_rules()
    return _out(stored)


@router.put("/{rule_id}", response_model=RuleOut, responses=error_responses(401, 403, 404, 422))
async def update(rule_id: str, service: ServiceDep, key: AdminKey,
                 body: Annotated[dict[str, Any], Body(examples=[RULE_EXAMPLE])]) -> RuleOut:
    definition = _validated({**body, "id": body.get("id", rule_id)})
    if definition["id"] != rule_id:
        raise ApiError(422, "invalid_rule", ["id: must match the rule id in the path"])
    async with service.api_pool.acquire() as conn, conn.transaction():
        if await get_rule(conn, rule_id) is None:
            raise ApiError(404, "not_found", f"no rule {rule_id!r}")
        stored = await put_rule(conn, definition, source="api", actor=actor(key))
    await service.reload_rules()
    return _out(stored)


@router.delete("/{rule_id}", status_code=204, response_class=Response,
               responses=error_responses(401, 403, 404))
async def remove(rule_id: str, service: ServiceDep, key: AdminKey) -> Response:
    async with service.api_pool.acquire() as conn, conn.transaction():
        if not await delete_rule(conn, rule_id, actor=actor(key)):
            raise ApiError(404, "not_found", f"no rule {rule_id!r}")
    await service.reload_rules()
    return Response(status_code=204)


@router.post("/{rule_id}/backtest", response_model=BacktestResult,
             responses=error_responses(401, 403, 404, 413, 422))
async def run_backtest(
    rule_id: str, service: ServiceDep, key: OperatorKey,
    from_: Annotated[dt.datetime, Query(alias="from")],
    to: Annotated[dt.datetime, Query()],
) -> BacktestResult:
    """The transitions the rule would have made over stored history in [from, to)."""
    if from_.tzinfo is None or to.tzinfo is None:
        raise ApiError(422, "invalid", "from and to need a UTC offset, e.g. 2026-11-23T00:00:00+07:00")
    if to <= from_:
        raise ApiError(422, "invalid", "to must be after from")
    from_us, to_us = int(from_.timestamp() * 1e6), int(to.timestamp() * 1e6)
    async with service.api_pool.acquire() as conn:
        stored = await get_rule(conn, rule_id)
        if stored is None:
            raise ApiError(404, "not_found", f"no rule {rule_id!r}")
        rule = rule_from_dict(stored.definition)
        devices = await device_metas(conn)
        in_scope = (None if rule.where.is_empty()
                    else [d.id for d in devices if where_matches(rule.where, d)])
        cols = await history_for_backtest(conn, kind=rule.kind, device_ids=in_scope,
                                          from_us=from_us, to_us=to_us,
                                          limit=BACKTEST_MAX_EVENTS + 1)
    if len(cols[0]) > BACKTEST_MAX_EVENTS:
        raise ApiError(413, "payload_too_large",
                       f"more than {BACKTEST_MAX_EVENTS} events in range; narrow from/to")
    batch = RuleBatch(cols[0], cols[1], np.asarray(cols[2], dtype=np.int64),
                      np.asarray(cols[3], dtype=np.float64))
    transitions = backtest(rule, batch, devices, until_us=to_us)
    return BacktestResult(rule_id=rule_id, events=len(batch), transitions=[
        TransitionOut(action=t.action, device_id=t.device_id,
                      ts=dt.datetime.fromtimestamp(t.ts_us / 1e6, dt.UTC),
                      value=None if np.isnan(t.value) else t.value, severity=t.severity,
                      message=t.message)
        for t in transitions])

