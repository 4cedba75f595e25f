"""p8: a GRIP proxy. This module is the public API for plugins."""

from __future__ import annotations

from .commands import Command, CommandError
from .config import Config, ConfigSection, parse_table
from .connector import (
    BackendWebSocket,
    BufferedResponse,
    Connector,
    OriginError,
    OriginRequest,
    OriginResponse,
    OriginTimeout,
    RequestTooLarge,
    WebSocketConnector,
    WebSocketMessage,
)
from .errors import ConfigError, InstructionError, P8Error, PluginError, PublishError
from .grip.instructions import Channel, Instruct, KeepAlive, NextLink
from .hold import (
    Action,
    ArmTimer,
    CancelTimer,
    Fetch,
    Fetched,
    Finish,
    ForgetLastId,
    HeldRequest,
    Hold,
    HoldMode,
    Report,
    Retry,
    SendBody,
    SendHead,
    Subscribe,
    Unsubscribe,
)
from .hookspecs import hookimpl, hookspec
from .pubsub.items import PublishFormat, PublishItem
from .transport import ClientTransport

__all__ = [
    "Action",
    "ArmTimer",
    "BackendWebSocket",
    "BufferedResponse",
    "CancelTimer",
    "Channel",
    "ClientTransport",
    "Command",
    "CommandError",
    "Config",
    "ConfigError",
    "ConfigSection",
    "Connector",
    "Fetch",
    "Fetched",
    "Finish",
    "ForgetLastId",
    "HeldRequest",
    "Hold",
    "HoldMode",
    "Instruct",
    "InstructionError",
    "KeepAlive",
    "NextLink",
    "OriginError",
    "OriginRequest",
    "OriginResponse",
    "OriginTimeout",
    "P8Error",
    "PluginError",
    "PublishError",
    "PublishFormat",
    "PublishItem",
    "Report",
    "RequestTooLarge",
    "Retry",
    "SendBody",
    "SendHead",
    "Subscribe",
    "Unsubscribe",
    "WebSocketConnector",
    "WebSocketMessage",
    "hookimpl",
    "hookspec",
    "parse_table",
]
