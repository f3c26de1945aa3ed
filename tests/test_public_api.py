"""The curated public API: adding or removing a name is a deliberate act."""

from __future__ import annotations

import importlib

import pytest

import llmline
from llmline import errors

PUBLIC = {
    "llmline": [
        "LLMLineError", "Settings", "UserError", "Workspace", "__version__", "find_workspace",
        "init_workspace",
    ],
    "llmline.data": [
        "DEFAULT_SQL", "BuildReport", "BuildResult", "CleaningSpec", "DatasetSpec",
        "DatasetVersionInfo", "FilterSpec", "SplitSpec", "build", "list", "show", "verify",
    ],
    "llmline.prompts": ["PromptInfo", "PromptRef", "PromptRegistry", "Template"],
    "llmline.models": [
        "BUILTIN_MODELS", "CHAMPION", "DeviceUnavailableError", "Gate", "GateFailedError",
        "GateFailure", "LoadedModel", "ModelError", "ModelEventInfo", "ModelImportError",
        "ModelRef", "ModelRegistry", "ModelVersionInfo", "Promotion", "check_gates",
        "folder_publisher", "import_model", "load_model", "verify_files",
    ],
    "llmline.training": [
        "CheckpointError", "DeviceUnavailableError", "LoraTuneConfig", "ProgressEvent",
        "TrainResult", "TrainingDataError", "TrainingDivergedError", "TrainingInputMissingError",
        "train_lora",
    ],
    "llmline.evaluation": [
        "Comparison", "EvalResult", "EvalStore", "EvaluationError", "GenerationResult", "Judge",
        "JudgeResult", "MetricDelta", "RequestStats", "Verdict", "compute_metrics",
        "default_embedder", "evaluate", "evaluate_model", "evaluation_gate", "generate",
        "load_rows", "parse_verdict", "promotion_gate",
    ],
    "llmline.warehouse": ["TableInfo", "Warehouse", "connect", "transpile"],
    "llmline.gateway": [
        "BackendError", "BackendHealth", "BackendRateLimited", "BackendTimeout",
        "BackendUnavailable", "DeploymentInfo", "DeploymentSpec", "DeploymentState",
        "DeploymentStore", "EmbeddedSettings", "GatewayError", "GatewaySettings",
        "GenerationChunk", "GenerationOutput", "GenerationRequest", "Provider", "ProviderContext",
        "UpstreamSettings", "build_app", "create_deployment", "promote_deployment",
        "rollback_deployment",
    ],
    "llmline.rag": [
        "BUILTIN_CORPORA", "Encoder", "Hit", "IngestResult", "KnowledgeBase",
        "KnowledgeBaseInfo", "MiniLMEncoder", "QueryTruncatedWarning", "SkippedFile", "ingest",
        "list_knowledge_bases", "open_knowledge_base",
    ],
    "llmline.guard": [
        "ROLES", "ApiKeyInfo", "Decision", "GuardPolicy", "Guardrails", "KeyStore", "Limits",
        "LimitsPolicy", "MemoryLedger", "MemoryRateLimiter", "Quota", "RedisLedger",
        "RedisRateLimiter", "Role", "ScannerPolicy", "Take", "Verdict", "allowed",
        "create_scanner", "parse_duration", "require", "scanner_names",
    ],
    "llmline.agents": [
        "AgentQuotas", "AgentResult", "AgentStep", "ChatClient", "ChatReply", "ModelCallError",
        "OpenAIChatClient", "ServiceChatClient", "Tool", "ToolCall", "ToolError",
        "ToolInputGuard", "ToolRegistry", "builtin_tools", "calculate", "run_agent", "tool",
    ],
    "llmline.chains": [
        "ChainError", "ChainResult", "ChainSpec", "ChainStepError", "StepResult",
        "example_chains", "find_chain", "load_chain", "run_chain",
    ],
    "llmline.testing": [
        "PostgresNotFoundError", "PostgresServer", "PostgresServerError", "RedisNotFoundError",
        "RedisServer", "ServerThread", "free_port",
    ],
}  # fmt: skip


@pytest.mark.parametrize("module_name", sorted(PUBLIC))
def test_all_is_pinned_and_importable(module_name: str) -> None:
    module = importlib.import_module(module_name)
    assert sorted(module.__all__) == sorted(PUBLIC[module_name])
    for name in module.__all__:
        assert getattr(module, name) is not None


def test_user_errors_subclass_the_right_builtins() -> None:
    assert issubclass(errors.WorkspaceNotFoundError, FileNotFoundError)
    assert issubclass(errors.NotFoundError, LookupError)
    for cls in (
        errors.ConfigError,
        errors.SQLError,
        errors.TemplateError,
        errors.IntegrityError,
        errors.ImportFileError,
        errors.EmptyResultError,
        errors.MissingColumnsError,
    ):
        assert issubclass(cls, ValueError), cls
    for name in errors.__all__:
        cls = getattr(errors, name)
        assert issubclass(cls, llmline.LLMLineError)
        if name != "LLMLineError":
            assert issubclass(cls, llmline.UserError)


def test_gateway_errors_subclass_the_right_builtins() -> None:
    from llmline.gateway import errors as gateway_errors

    assert issubclass(gateway_errors.InvalidRequestError, ValueError)
    assert issubclass(gateway_errors.NotFoundError, LookupError)
    assert issubclass(gateway_errors.BackendTimeout, TimeoutError)
    assert issubclass(gateway_errors.BackendError, ConnectionError)
    assert issubclass(gateway_errors.AuthenticationError, PermissionError)
    assert gateway_errors.RateLimitError("slow down", retry_after_s=1.2).headers == {
        "Retry-After": "2"
    }
