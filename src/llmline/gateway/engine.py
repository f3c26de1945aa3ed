"""The gateway's live state: started backends and the deployments using them.

Deployments are rebuilt from the metadata store whenever their revision
changes (polled every ``gateway.reload_interval_s``).  A rebuilt deployment
is swapped in with one assignment; requests already running keep the
objects they started with, and a backend no deployment uses any more is
closed only once its last in-flight request is done.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy.exc import SQLAlchemyError

from llmline.errors import LLMLineError, NotFoundError, UserError
from llmline.gateway.deployments.spec import DeploymentSpec, DeploymentState
from llmline.gateway.deployments.store import DeploymentInfo, DeploymentStore
from llmline.gateway.errors import NotFoundError as ModelNotFound
from llmline.gateway.providers import (
    BackendHealth,
    Provider,
    ProviderContext,
    create_provider,
    split_target,
)

if TYPE_CHECKING:
    from llmline.gateway.citations import CitationIndex
    from llmline.gateway.rag import RagRuntime
    from llmline.gateway.routing import Router
    from llmline.prompts.template import Template
    from llmline.workspace import Workspace

__all__ = ["Engine", "LiveDeployment", "PromptBinding"]

log = logging.getLogger("llmline.gateway")


@dataclass(frozen=True)
class PromptBinding:
    """The instruction template a deployment wraps questions in."""

    ref: str | None = None
    template: Template | None = None


@dataclass
class LiveDeployment:
    spec: DeploymentSpec
    state: DeploymentState
    revision: int
    router: Router
    prompt: PromptBinding
    citations: CitationIndex | None = None
    implicit: bool = False  # a registry model called by name, not a saved deployment
    rag: RagRuntime | None = None  # a kind: rag deployment's knowledge base and template
    shadow_stats: dict[str, float] = field(default_factory=lambda: {"n": 0.0, "similarity": 0.0})

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def targets(self) -> list[str]:
        return [*self.spec.models, *self.spec.fallbacks]

    @property
    def scope(self) -> str:
        """Cache scope: changes whenever what answers changes."""
        return f"{self.name}:{self.revision}:{','.join(self.spec.models)}:{self.prompt.ref}"


class _Backend:
    def __init__(self, provider: Provider) -> None:
        self.provider = provider
        self.users = 0  # deployments using it
        self.in_flight = 0
        self.start_task: asyncio.Task[None] | None = None
        self.failure: str | None = None  # set when start() raised instead of reporting

    def health(self) -> BackendHealth:
        if self.failure is not None:
            return BackendHealth("failed", self.failure)
        return self.provider.health()


class Engine:
    def __init__(self, workspace: Workspace | None) -> None:
        self.workspace = workspace
        self.deployments: dict[str, LiveDeployment] = {}
        self._backends: dict[str, _Backend] = {}
        self._revisions: dict[str, int] = {}
        self._reload_task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()

    # -- lifecycle -----------------------------------------------------------

    async def start(self, *, reload_interval_s: float = 1.0) -> None:
        await self.refresh()
        self._reload_task = asyncio.create_task(self._reload_loop(reload_interval_s))

    async def close(self) -> None:
        if self._reload_task is not None:
            self._reload_task.cancel()
            await asyncio.gather(self._reload_task, return_exceptions=True)
        for backend in list(self._backends.values()):
            await self._stop(backend)
        self._backends.clear()

    async def _reload_loop(self, interval_s: float) -> None:
        while True:
            await asyncio.sleep(interval_s)
            try:
                await self.refresh()
            except (LLMLineError, OSError, SQLAlchemyError) as exc:
                # A bad change, or the metadata store being down for a while, must
                # not take down what serves now (nor end this loop); it stays visible.
                log.error("deployment reload failed: %s", exc)

    # -- deployments ---------------------------------------------------------

    async def refresh(self) -> list[str]:
        """Rebuild deployments whose revision changed; returns their names."""
        if self.workspace is None:
            return []
        store = DeploymentStore(self.workspace.metadata)
        revisions = await asyncio.to_thread(store.revisions)
        async with self._lock:
            changed = [n for n, r in revisions.items() if self._revisions.get(n) != r]
            removed = [n for n in self._revisions if n not in revisions]
            for name in changed:
                info = await asyncio.to_thread(store.get, name)
                await self._install(await asyncio.to_thread(self._build, info))
            for name in removed:
                old = self.deployments.pop(name, None)
                self._revisions.pop(name, None)
                if old is not None:
                    await self._release(old)
        if changed or removed:
            log.info("deployments changed: %s", ", ".join(changed + removed))
        return changed + removed

    async def add(self, spec: DeploymentSpec, state: DeploymentState | None = None) -> None:
        """Serve ``spec`` from memory (embedding without a metadata store)."""
        info = DeploymentInfo(spec, state or DeploymentState(), 1, "memory", _now(), _now())
        async with self._lock:
            await self._install(self._build(info))

    async def _install(self, live: LiveDeployment) -> None:
        for target in live.targets:
            self._acquire(target)
        old = self.deployments.get(live.name)
        self.deployments[live.name] = live
        self._revisions[live.name] = live.revision
        if old is not None:
            await self._release(old)

    def _build(self, info: DeploymentInfo, *, implicit: bool = False) -> LiveDeployment:
        from llmline.gateway.routing import Router

        return LiveDeployment(
            spec=info.spec,
            state=info.state,
            revision=info.revision,
            router=Router(info.spec, info.state),
            prompt=self._prompt_binding(info.spec),
            citations=self._citations(info.spec),
            implicit=implicit,
            rag=self._rag(info.spec),
        )

    def _rag(self, spec: DeploymentSpec) -> RagRuntime | None:
        from llmline.gateway.rag import build_rag_runtime

        return build_rag_runtime(self.workspace, spec)

    def resolve(self, name: str) -> LiveDeployment:
        """The deployment clients call as ``model``; a registry model name
        (``faq``, ``faq@champion``, ``faq@2``) works too."""
        live = self.deployments.get(name)
        if live is not None:
            return live
        return self._implicit(name)

    def _implicit(self, name: str) -> LiveDeployment:
        if self.workspace is None or ":" in name:
            raise self._unknown(name)
        from llmline.models import ModelRegistry

        registry = ModelRegistry(self.workspace.metadata)
        ref = name if "@" in name else f"{name}@champion"
        try:
            info = registry.get(ref)
        except (NotFoundError, UserError):
            raise self._unknown(name) from None
        key = f"model:{name}"
        live = self.deployments.get(key)
        if live is None:
            spec = DeploymentSpec(name=info.name, models=[info.ref])
            record = DeploymentInfo(
                spec, DeploymentState(reason="direct"), 0, "model", _now(), _now()
            )
            live = self._build(record, implicit=True)
            for target in live.targets:
                self._acquire(target)
            self.deployments[key] = live
        return live

    def preload(self, names: list[str]) -> None:
        """Start loading registry models now (``llmline serve`` with no
        deployments: every champion), so the first request does not wait."""
        for name in names:
            self._implicit(name)

    def champions(self) -> list[str]:
        if self.workspace is None:
            return []
        from llmline.models import ModelRegistry

        infos = ModelRegistry(self.workspace.metadata).list()
        return [f"{i.name}@champion" for i in infos if "champion" in i.aliases]

    async def ready(self, target: str, timeout_s: float) -> None:
        """Wait (up to ``timeout_s``) for ``target`` to finish loading: a
        request arriving while weights load waits instead of failing."""
        backend = self._backends.get(target)
        task = backend.start_task if backend is not None else None
        if task is not None and not task.done():
            await asyncio.wait([task], timeout=timeout_s)

    def _unknown(self, name: str) -> ModelNotFound:
        names = sorted(n for n, d in self.deployments.items() if not d.implicit)
        known = ", ".join(names) or "none"
        return ModelNotFound(
            f"the model {name!r} does not exist: not a deployment (deployments: {known}) "
            "nor a registered model with a champion",
            param="model",
        )

    def _prompt_binding(self, spec: DeploymentSpec) -> PromptBinding:
        if spec.raw or spec.kind == "rag" or self.workspace is None:  # rag: its own template
            return PromptBinding()
        ref = spec.prompt or self._tuned_template(spec)
        if ref is None:
            return PromptBinding()
        from llmline.prompts import PromptRegistry

        info = PromptRegistry(self.workspace.metadata).get(ref)
        return PromptBinding(info.ref, info.template)

    def _tuned_template(self, spec: DeploymentSpec) -> str | None:
        """The template the deployment's first registry model was tuned with."""
        info = self._first_model(spec)
        template = info.metadata.get("template") if info is not None else None
        return template if isinstance(template, str) else None

    def _first_model(self, spec: DeploymentSpec) -> Any:
        if self.workspace is None:
            return None
        from llmline.models import ModelRegistry

        for target in spec.models:
            scheme, rest = split_target(target)
            if scheme == "embedded":
                return ModelRegistry(self.workspace.metadata).get(rest)
        return None

    def _citations(self, spec: DeploymentSpec) -> CitationIndex | None:
        dataset = spec.citations
        if dataset is None:
            info = self._first_model(spec)
            dataset = info.metadata.get("dataset") if info is not None else None
        if not isinstance(dataset, str) or self.workspace is None:
            return None
        from llmline.gateway.citations import load_citation_index

        try:
            return load_citation_index(self.workspace, dataset)
        except (LLMLineError, OSError) as exc:
            log.warning("no citation index for %s (%s): %s", spec.name, dataset, exc)
            return None

    # -- backends ------------------------------------------------------------

    def _acquire(self, target: str) -> None:
        backend = self._backends.get(target)
        if backend is None:
            backend = _Backend(create_provider(target, self._context(target)))
            backend.start_task = asyncio.create_task(_start(backend))
            self._backends[target] = backend
        backend.users += 1

    def _context(self, target: str) -> ProviderContext:
        scheme, rest = split_target(target)
        settings = self.workspace.settings if self.workspace is not None else None
        options: dict[str, Any] = {}
        if settings is not None and scheme == "embedded":
            options = settings.gateway.embedded.model_dump()
        elif settings is not None and scheme == "upstream" and rest in settings.upstreams:
            options = settings.upstreams[rest].model_dump()
        return ProviderContext(self.workspace, options)

    async def _release(self, live: LiveDeployment) -> None:
        for target in live.targets:
            backend = self._backends.get(target)
            if backend is None:
                continue
            backend.users -= 1
            if backend.users <= 0 and backend.in_flight == 0:
                self._backends.pop(target, None)
                await self._stop(backend)

    async def _stop(self, backend: _Backend) -> None:
        if backend.start_task is not None and not backend.start_task.done():
            backend.start_task.cancel()
            await asyncio.gather(backend.start_task, return_exceptions=True)
        await backend.provider.close()

    def provider(self, target: str) -> Provider:
        return self._backends[target].provider

    def health(self, target: str) -> BackendHealth:
        backend = self._backends.get(target)
        if backend is None:
            return BackendHealth("failed", "not started")
        return backend.health()

    def healthy(self, target: str) -> bool:
        return self.health(target).ready

    def in_flight(self, target: str) -> int:
        backend = self._backends.get(target)
        return backend.in_flight if backend is not None else 0

    @contextmanager
    def using(self, target: str) -> Iterator[Provider]:
        """Hold ``target`` for one call (a swap meanwhile does not close it)."""
        backend = self._backends[target]
        backend.in_flight += 1
        try:
            yield backend.provider
        finally:
            backend.in_flight -= 1
            if backend.users <= 0 and backend.in_flight == 0 and target in self._backends:
                self._backends.pop(target)
                asyncio.get_running_loop().create_task(self._stop(backend))

    def backends(self) -> dict[str, BackendHealth]:
        return {t: b.health() for t, b in sorted(self._backends.items())}

    async def wait_started(self, timeout_s: float | None = None) -> None:
        """Wait until every backend finished starting (ready or failed)."""
        tasks = [b.start_task for b in self._backends.values() if b.start_task is not None]
        if tasks:
            await asyncio.wait(tasks, timeout=timeout_s)

    async def persist(self, live: LiveDeployment, state: DeploymentState, action: str) -> None:
        """Save an automatic rollout decision (canary) and serve by it at once."""
        live.state = state
        from llmline.gateway.routing import Router

        live.router = Router(live.spec, state)
        if self.workspace is None or live.implicit:
            return
        store = DeploymentStore(self.workspace.metadata)
        await asyncio.to_thread(
            store.change_state,
            live.name,
            lambda _spec, _old: state,
            action=action,
            actor="gateway",
            expect_revision=live.revision,
        )


async def _start(backend: _Backend) -> None:
    try:
        await backend.provider.start()
    except Exception as exc:  # a provider must report, not raise; keep serving the others
        backend.failure = f"{type(exc).__name__}: {exc}"
        log.error("backend %s failed to start: %s", backend.provider.target, backend.failure)


def _now() -> Any:
    from llmline.storage.models import utcnow

    return utcnow()
