"""Alerting: rules (:mod:`llmline.monitoring.alert_rules`) evaluated
periodically over the request log, firing to a webhook and to the log.

Each evaluation measures every rule.  A rule whose value exceeds its
threshold becomes *pending*, and *firing* once it has stayed so for its
``for`` (at once without one); it is *resolved* the first evaluation it no
longer does.  Transitions (firing, resolved) are logged on ``llmline.alerts``
and POSTed to ``monitoring.alert_webhook`` in the shape of an Alertmanager
webhook (``{"version": "4", "status", "alerts": [{"status", "labels",
"annotations", "startsAt", "endsAt"}]}``), so receivers written for
Prometheus alerts take them unchanged.  A webhook that fails or times out is
logged, never raised: alerting must not take the gateway down.

The gateway runs the evaluator (:func:`build_alerting` at build time, so bad
rules stop ``llmline serve`` with one line; :meth:`AlertEvaluator.start` in
its lifespan).  With several workers, one evaluates at a time: the one
holding the lock file ``.llmline/monitoring/alerts/evaluator.lock``.  Each
evaluation's states are saved to ``.llmline/monitoring/alerts/latest.json``,
which ``llmline monitor alerts`` starts from, so a rule's ``for`` carries over.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import logging
import os
import tempfile
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import httpx

from llmline.monitoring.alert_rules import AlertRule, Measurement, RuleContext, load_rules

if TYPE_CHECKING:
    from llmline.monitoring.config import SloSpec
    from llmline.workspace import Workspace

__all__ = [
    "AlertEvaluator",
    "AlertState",
    "GatewayAlerting",
    "build_alerting",
    "load_snapshot",
    "snapshot_path",
    "start_alerting",
    "webhook_payload",
]

log = logging.getLogger("llmline.alerts")

State = Literal["inactive", "pending", "firing"]
Transition = Literal["firing", "resolved"]
_ZERO_TIME = "0001-01-01T00:00:00Z"  # Alertmanager's "not ended yet"


@dataclass
class AlertState:
    name: str
    expr: str
    severity: str
    state: State
    value: float | str | None
    threshold: float | None
    detail: str
    evaluated_at: datetime
    active_since: datetime | None = None  # when its condition started to hold
    transition: Transition | None = None  # what changed at this evaluation
    labels: dict[str, str] = field(default_factory=dict)
    summary: str | None = None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["evaluated_at"] = self.evaluated_at.isoformat()
        data["active_since"] = self.active_since.isoformat() if self.active_since else None
        return data


def snapshot_path(workspace: Workspace) -> Path:
    return workspace.state_dir / "monitoring" / "alerts" / "latest.json"


def load_snapshot(path: Path) -> dict[str, AlertState]:
    """The states of the last evaluation saved at ``path`` (empty when none)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    states: dict[str, AlertState] = {}
    for item in data.get("alerts", []):
        with contextlib.suppress(KeyError, TypeError, ValueError):
            item["evaluated_at"] = datetime.fromisoformat(item["evaluated_at"])
            since = item.get("active_since")
            item["active_since"] = datetime.fromisoformat(since) if since else None
            states[item["name"]] = AlertState(**item)
    return states


def _write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def webhook_payload(states: list[AlertState]) -> dict[str, Any]:
    """Alertmanager's webhook shape (version 4) for ``states``' transitions."""
    alerts = []
    for state in states:
        labels = {"alertname": state.name, "severity": state.severity, **state.labels}
        annotations = {"detail": state.detail, "value": str(state.value), "expr": state.expr}
        if state.summary:
            annotations["summary"] = state.summary
        resolved = state.transition == "resolved"
        started = state.active_since or state.evaluated_at
        alerts.append(
            {
                "status": "resolved" if resolved else "firing",
                "labels": labels,
                "annotations": annotations,
                "startsAt": started.isoformat(),
                "endsAt": state.evaluated_at.isoformat() if resolved else _ZERO_TIME,
                "generatorURL": "llmline://monitor/alerts",
            }
        )
    firing = any(a["status"] == "firing" for a in alerts)
    return {
        "version": "4",
        "receiver": "llmline",
        "status": "firing" if firing else "resolved",
        "groupKey": "llmline",
        "alerts": alerts,
    }


class AlertEvaluator:
    """Evaluates ``rules`` over ``workspace``'s request log.

    ``previous`` seeds the states (e.g. :func:`load_snapshot`); with
    ``snapshot`` each evaluation is saved there, with ``lock`` only the
    process holding that lock file evaluates in :meth:`run`.  ``notify=False``
    only looks: transitions are neither logged nor posted.  ``slos`` (default:
    the workspace's ``monitoring.slos``) are what ``slo_burn_rate`` rules name.
    """

    def __init__(
        self,
        workspace: Workspace,
        rules: list[AlertRule],
        webhook_url: str | None = None,
        *,
        interval_s: float | None = None,
        previous: dict[str, AlertState] | None = None,
        snapshot: Path | None = None,
        lock: Path | None = None,
        timeout_s: float = 5.0,
        notify: bool = True,
        slos: list[SloSpec] | None = None,
    ) -> None:
        self.workspace = workspace
        self.rules = rules
        self.webhook_url = webhook_url
        self.interval_s = interval_s or workspace.settings.monitoring.alert_interval_s
        self.snapshot = snapshot
        self.lock = lock
        self.timeout_s = timeout_s
        self.notify = notify
        chosen = workspace.settings.monitoring.slos if slos is None else slos
        self.slos = {slo.name: slo for slo in chosen}
        self.states: dict[str, AlertState] = dict(previous or {})
        self.webhook_failures = 0
        self._lock_fd: int | None = None
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    # -- one evaluation ---------------------------------------------------------------

    def evaluate_once(self, now: datetime | None = None) -> list[AlertState]:
        """Measure every rule once; notify transitions; the states, in rule order."""
        now = now or datetime.now(UTC)
        ctx = RuleContext(
            store=self.workspace.metadata,
            slos=self.slos,
            state_dir=self.workspace.state_dir,
            now=now,
        )
        states = [self._evaluate(rule, ctx) for rule in self.rules]
        self.states = {s.name: s for s in states}
        changed = [s for s in states if s.transition is not None]
        if changed and self.notify:
            self._log(changed)
            self._post(changed)
        if self.snapshot is not None:
            body = {"evaluated_at": now.isoformat(), "alerts": [s.to_dict() for s in states]}
            _write_atomic(self.snapshot, json.dumps(body, indent=2) + "\n")
        return states

    def _evaluate(self, rule: AlertRule, ctx: RuleContext) -> AlertState:
        prior = self.states.get(rule.name)
        try:
            measured = rule.measure(ctx)
        except Exception as exc:  # a store that is down: keep the last state, say why
            log.error("alert rule %s could not be evaluated: %s", rule.name, exc)
            measured = None
        state = AlertState(
            name=rule.name,
            expr=rule.expr,
            severity=rule.severity,
            state="inactive",
            value=None,
            threshold=getattr(rule, "threshold", None),
            detail="",
            evaluated_at=ctx.now,
            labels=dict(rule.labels),
            summary=rule.summary,
        )
        if measured is None:
            state.detail = "evaluation failed (see the log); last state kept"
            if prior is not None:
                state.state, state.active_since = prior.state, prior.active_since
            return state
        return _advance(state, measured, prior, rule)

    # -- notifying ----------------------------------------------------------------------

    def _log(self, changed: list[AlertState]) -> None:
        for state in changed:
            if state.transition == "firing":
                log.warning("alert firing: %s [%s] %s", state.name, state.severity, state.detail)
            else:
                log.info("alert resolved: %s [%s] %s", state.name, state.severity, state.detail)

    def _post(self, changed: list[AlertState]) -> None:
        if not self.webhook_url:
            return
        try:
            response = httpx.post(
                self.webhook_url, json=webhook_payload(changed), timeout=self.timeout_s
            )
            response.raise_for_status()
        except httpx.HTTPError as exc:
            self.webhook_failures += 1
            log.error("alert webhook %s failed: %s", self.webhook_url, exc)

    # -- running periodically ---------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Evaluate every ``interval_s`` until ``stop`` is set."""
        try:
            while not stop.is_set():
                if self._leader():
                    try:
                        await asyncio.to_thread(self.evaluate_once)
                    except Exception:  # never let one bad evaluation end alerting
                        log.exception("alert evaluation failed")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self.interval_s)
        finally:
            self._release()

    def _leader(self) -> bool:
        """Whether this process evaluates: it holds the lock (tried each time,
        so another worker takes over when the holder exits)."""
        if self.lock is None or self._lock_fd is not None:
            return True
        self.lock.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.lock, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._lock_fd = fd
        return True

    def _release(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # closing drops the flock
            self._lock_fd = None

    def start(self) -> asyncio.Task[None]:
        """Run on the current event loop; :meth:`stop` ends it."""
        self._stop.clear()
        self._task = asyncio.get_running_loop().create_task(self.run(self._stop))
        return self._task

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            # An evaluation in its thread finishes on its own; shutdown need not wait long.
            with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(asyncio.shield(self._task), self.timeout_s + 5)
            self._task = None


def _advance(
    state: AlertState, measured: Measurement, prior: AlertState | None, rule: AlertRule
) -> AlertState:
    """The state machine: inactive → pending → firing → (resolved) inactive."""
    state.value, state.detail = measured.value, measured.detail
    was_firing = prior is not None and prior.state == "firing"
    if not measured.active:
        state.transition = "resolved" if was_firing else None
        if was_firing and prior is not None:
            state.active_since = prior.active_since
        return state
    held_since = prior.active_since if prior is not None and prior.state != "inactive" else None
    state.active_since = held_since or state.evaluated_at
    if state.evaluated_at - state.active_since >= rule.for_td:
        state.state = "firing"
        state.transition = None if was_firing else "firing"
    else:
        state.state = "pending"
    return state


def _rules_of(workspace: Workspace) -> list[AlertRule] | None:
    monitoring = workspace.settings.monitoring
    if not monitoring.alert_rules:
        return None
    path = Path(monitoring.alert_rules)
    if not path.is_absolute():
        path = workspace.root / path
    return load_rules(path, slos=monitoring.slos)


def build_alerting(workspace: Workspace | None) -> AlertEvaluator | None:
    """The gateway's evaluator (None without ``monitoring.alert_rules``);
    :class:`~llmline.errors.ConfigError` when the rules are malformed."""
    if workspace is None:
        return None
    rules = _rules_of(workspace)
    if rules is None:
        return None
    folder = snapshot_path(workspace).parent
    return AlertEvaluator(
        workspace,
        rules,
        workspace.settings.monitoring.alert_webhook,
        previous=load_snapshot(snapshot_path(workspace)),
        snapshot=snapshot_path(workspace),
        lock=folder / "evaluator.lock",
    )


def start_alerting(workspace: Workspace | None) -> asyncio.Task[None] | None:
    """Build the evaluator and start it on the running loop (None: no rules)."""
    evaluator = build_alerting(workspace)
    return evaluator.start() if evaluator is not None else None


class GatewayAlerting:
    """Alerting as the gateway's lifespan runs it: built with the app (bad
    rules raise :class:`~llmline.errors.ConfigError` then), started at
    startup, stopped at shutdown; nothing at all without alert rules."""

    def __init__(self, workspace: Workspace | None) -> None:
        self.evaluator = build_alerting(workspace)

    def start(self) -> None:
        if self.evaluator is not None:
            self.evaluator.start()

    async def stop(self) -> None:
        if self.evaluator is not None:
            await self.evaluator.stop()
