"""Declarative chains: prompt → model → parse → tool steps from YAML.

>>> from llmline.chains import find_chain, load_chain, run_chain
>>> spec = load_chain(find_chain("calories"))
>>> result = await run_chain(spec, {"meal": "two eggs and toast"}, client=..., deployment="faq")
>>> result.value  # the summed kcal
"""

from llmline.chains.runner import ChainError, ChainResult, ChainStepError, StepResult, run_chain
from llmline.chains.spec import ChainSpec, example_chains, find_chain, load_chain

__all__ = [
    "ChainError",
    "ChainResult",
    "ChainSpec",
    "ChainStepError",
    "StepResult",
    "example_chains",
    "find_chain",
    "load_chain",
    "run_chain",
]
