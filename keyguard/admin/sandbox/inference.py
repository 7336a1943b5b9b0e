"""The sandbox's ``/v1/models`` and ``/v1/messages`` answers, whichever credential asked."""

from __future__ import annotations

import json
import secrets
from typing import Any

from keyguard.admin.sandbox.wire import SandboxError

MODELS = ("claude-opus-4-6", "claude-sonnet-4-5", "claude-haiku-4-5")


def models_page(*, lifecycle: bool) -> dict[str, Any]:
    """The model list; ``lifecycle`` adds the fields the API shows API-key callers."""
    data: list[dict[str, Any]] = []
    for model in MODELS:
        entry = {
            "type": "model",
            "id": model,
            "display_name": model,
            "created_at": "2025-01-01T00:00:00Z",
        }
        if lifecycle:
            entry.update(lifecycle="active", line=model.split("-")[1])
        data.append(entry)
    return {"data": data, "has_more": False, "first_id": MODELS[0], "last_id": MODELS[-1]}


def message_tokens(body: Any) -> tuple[str, int, int]:
    """``(model, input tokens, output tokens)`` of a ``POST /v1/messages`` body, or 400."""
    body = body if isinstance(body, dict) else {}
    model, max_tokens = body.get("model"), body.get("max_tokens")
    if not isinstance(model, str) or not isinstance(body.get("messages"), list):
        raise SandboxError(400, "invalid_request_error", "model and messages are required")
    if not isinstance(max_tokens, int) or max_tokens < 1:
        raise SandboxError(400, "invalid_request_error", "max_tokens: Field required")
    return model, max(1, len(json.dumps(body["messages"])) // 4), min(max_tokens, 8)


def message(model: str, input_tokens: int, output_tokens: int) -> dict[str, Any]:
    """The sandbox's answer to a message: always the word ``sandbox``."""
    return {
        "id": "msg_" + secrets.token_hex(12),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [{"type": "text", "text": "sandbox"}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": input_tokens, "output_tokens": output_tokens},
    }
