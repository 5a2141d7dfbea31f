"""OperationOutcome resources and :class:`FhirInputError`, the error of every refused FHIR input."""

from __future__ import annotations

from typing import Any

from spinereg._errors import SpineregError

__all__ = ["FhirInputError", "operation_outcome"]


def operation_outcome(diagnostics: str, *, code: str = "invalid", expression: str | None = None,
                      severity: str = "error") -> dict[str, Any]:
    """An OperationOutcome with one issue (``code`` from the FHIR issue-type value set)."""
    issue: dict[str, Any] = {"severity": severity, "code": code, "diagnostics": diagnostics}
    if expression:
        issue["expression"] = [expression]
    return {"resourceType": "OperationOutcome", "issue": [issue]}


class FhirInputError(SpineregError):
    """A FHIR request or resource refused; :attr:`outcome` is the OperationOutcome to answer with.

    Attributes
    ----------
    status : int
        The HTTP status to answer with (400, 404, 413, 422 ...).
    link_id : str or None
        The questionnaire item concerned (``linkId``), when one is.
    value : str or None
        The refused value as shown to the client (a CPR number is never shown).
    outcome : dict
        The OperationOutcome resource (JSON); its diagnostics name the ``linkId`` and value.
    """

    def __init__(self, message: str, *, status: int = 422, code: str = "invalid", expression: str | None = None,
                 link_id: str | None = None, value: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.link_id = link_id
        self.value = value
        self.outcome = operation_outcome(message, code=code, expression=expression)
