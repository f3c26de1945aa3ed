"""Pipelines: Kubeflow Pipelines v2 definitions, run locally and compiled.

``run_pipeline(workspace, "tune", {...})`` runs a pipeline with kfp's local
runner (caching on) and records the run; ``compile_pipeline("tune", path)``
writes the pipeline-spec YAML that Kubeflow Pipelines and Vertex AI
Pipelines run.  kfp itself (the ``tune`` extra) loads on first use.
"""

from llmline.pipelines.registry import PIPELINES, PipelineDefinition, compile_pipeline, get_pipeline
from llmline.pipelines.runner import PipelineFailedError, StepEvent, run_pipeline
from llmline.pipelines.store import RunInfo, RunStore, StepInfo

__all__ = [
    "PIPELINES",
    "PipelineDefinition",
    "PipelineFailedError",
    "RunInfo",
    "RunStore",
    "StepEvent",
    "StepInfo",
    "compile_pipeline",
    "get_pipeline",
    "run_pipeline",
]
