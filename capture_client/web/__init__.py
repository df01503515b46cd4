"""The browser page and its gateway: each browser WebSocket is bridged to one StreamFuse call.

Browsers cannot open a client-streaming gRPC call, so the page speaks a small WebSocket protocol
(`protocol.py`) to this gateway, which speaks native gRPC to the fusion service.
"""
