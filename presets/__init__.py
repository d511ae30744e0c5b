"""The built-in client-tool presets (catalog), tool-body validation for the API, and {{param}} templating.

Read by the agent runtime and the control API; imports neither transports nor the API.
"""
