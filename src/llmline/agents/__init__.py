"""Tool-calling agents against any deployment.

>>> from llmline.agents import OpenAIChatClient, builtin_tools, run_agent
>>> result = await run_agent("How many kcal in 2 eggs?", client=OpenAIChatClient(model="faq"),
...                          tools=builtin_tools())
>>> result.answer, result.finish_reason
"""

from llmline.agents.builtin import builtin_tools, calculate
from llmline.agents.client import (
    ChatClient,
    ChatReply,
    ModelCallError,
    OpenAIChatClient,
    ServiceChatClient,
    ToolCall,
)
from llmline.agents.loop import AgentQuotas, AgentResult, AgentStep, ToolInputGuard, run_agent
from llmline.agents.tools import Tool, ToolError, ToolRegistry, tool

__all__ = [
    "AgentQuotas",
    "AgentResult",
    "AgentStep",
    "ChatClient",
    "ChatReply",
    "ModelCallError",
    "OpenAIChatClient",
    "ServiceChatClient",
    "Tool",
    "ToolCall",
    "ToolError",
    "ToolInputGuard",
    "ToolRegistry",
    "builtin_tools",
    "calculate",
    "run_agent",
    "tool",
]
