"""What one evaluation task returns."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

# A seeded text perturbation (robustness), applied to every input text of a task.
Perturb = Callable[[str], str]


@dataclass
class TaskResult:
    """`metrics`: numbers only (report.json's tasks.<name>); `details`: what they were computed
    on and with (data sha256, settings, examples, confusion matrix...)."""

    metrics: dict[str, float]
    details: dict[str, Any] = field(default_factory=dict)
