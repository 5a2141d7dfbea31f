"""The ``/fhir/`` REST API of the web registry (FHIR R4 JSON), a Django app (label ``spinereg_fhir``).

Clients authenticate with a bearer token (:class:`spinereg.fhir_api.models.ApiToken`,
stored as its SHA-256 hash; ``spinereg token create USER``); a token acts as its
user, with the user's role and site (:mod:`spinereg.web.permissions`).  The
resources come from :mod:`spinereg.fhir`; every write goes through
:class:`spinereg.registry.RegistryWriter`.  Importing this package does not import Django.
"""
