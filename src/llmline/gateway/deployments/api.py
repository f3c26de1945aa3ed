"""The Python API behind ``llmline deploy``: create, promote, roll back and
declare deployments, with every reference checked before anything is saved.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from llmline.errors import ConfigError, NotFoundError, UserError
from llmline.gateway.deployments.spec import DeploymentSpec, DeploymentState
from llmline.gateway.deployments.store import DeploymentInfo, DeploymentStore
from llmline.gateway.providers import provider_names, split_target

if TYPE_CHECKING:
    from llmline.workspace import Workspace

__all__ = [
    "create_deployment",
    "pin_targets",
    "promote_deployment",
    "rollback_deployment",
    "sync_declared_deployments",
]


def pin_targets(workspace: Workspace, spec: DeploymentSpec) -> DeploymentSpec:
    """``spec`` with registry references pinned to exact versions
    (``faq@champion`` → ``faq@3``) and every target and prompt checked.

    Pinning makes "which version served this" a fact of the deployment;
    a later promotion in the registry changes nothing until the deployment
    is re-created (``deploy create --replace``).
    """
    from llmline.models import ModelRegistry
    from llmline.prompts import PromptRegistry

    registry = ModelRegistry(workspace.metadata)

    def pin(target: str) -> str:
        scheme, rest = split_target(target)
        if scheme not in provider_names():
            known = ", ".join(provider_names())
            raise ConfigError(f"no provider {scheme!r} for target {target!r} (known: {known})")
        if scheme == "embedded":
            return registry.get(rest).ref
        if scheme == "upstream" and rest not in workspace.settings.upstreams:
            known = ", ".join(sorted(workspace.settings.upstreams)) or "none configured"
            raise ConfigError(f"unknown upstream {rest!r} in llmline.yaml (upstreams: {known})")
        return target

    prompt = spec.prompt
    if prompt is not None:
        prompt = PromptRegistry(workspace.metadata).get(prompt).ref
    return spec.model_copy(
        update={
            "models": [pin(t) for t in spec.models],
            "fallbacks": [pin(t) for t in spec.fallbacks],
            "prompt": prompt,
        }
    )


def create_deployment(
    workspace: Workspace, spec: DeploymentSpec, *, replace: bool = False, source: str = "cli"
) -> tuple[DeploymentInfo, bool]:
    """Validate, pin and save ``spec``; a running gateway picks it up."""
    pinned = pin_targets(workspace, spec)
    return DeploymentStore(workspace.metadata).save(pinned, replace=replace, source=source)


def _manual(
    workspace: Workspace, name: str, action: Literal["promote", "rollback"]
) -> DeploymentInfo:
    from llmline.gateway.routing import apply_manual

    store = DeploymentStore(workspace.metadata)

    def change(spec: DeploymentSpec, state: DeploymentState) -> DeploymentState:
        return apply_manual(spec, state, action)

    info = store.change_state(name, change, action=action)
    assert info is not None
    return info


def promote_deployment(workspace: Workspace, name: str) -> DeploymentInfo:
    """Canary/shadow: the challenger takes all traffic; blue-green: switch colour."""
    return _manual(workspace, name, "promote")


def rollback_deployment(workspace: Workspace, name: str) -> DeploymentInfo:
    """Undo the last promotion (canary/shadow: back to stable)."""
    return _manual(workspace, name, "rollback")


def sync_declared_deployments(workspace: Workspace) -> list[DeploymentInfo]:
    """Save the ``deployments:`` of ``llmline.yaml``; returns those that changed.

    A declared deployment owns its name: one created from the CLI under the
    same name is an error to resolve, not something to overwrite silently.
    """
    store = DeploymentStore(workspace.metadata)
    changed = []
    for name, spec in workspace.settings.deployments.items():
        try:
            existing = store.get(name)
        except NotFoundError:
            existing = None
        if existing is not None and existing.source != "config":
            raise UserError(
                f"deployment {name!r} is declared in llmline.yaml but was created with "
                f"'llmline deploy create'; delete one of them (llmline deploy delete {name})"
            )
        info, was_changed = create_deployment(workspace, spec, replace=True, source="config")
        if was_changed:
            changed.append(info)
    return changed
