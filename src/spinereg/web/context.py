"""Template context: whether the registry holds synthetic data (the SYNTHETIC banner)."""

from __future__ import annotations

from typing import Any


def registry(request: Any) -> dict[str, Any]:
    from spinereg.registry.models import Dataset

    return {"synthetic": Dataset.objects.filter(synthetic=True).exists()}
