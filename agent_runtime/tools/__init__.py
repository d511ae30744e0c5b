"""Tool execution for a call: client tools over the data channel, server webhooks, built-ins.

`ToolExecutor` (executor.py) is what the conversation holds; the rest are its parts.
"""
