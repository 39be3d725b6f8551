"""The sidecar service: ``tiering serve``, an HTTP API in front of a TieredStore.

:func:`tiering.service.app.create_app` builds the FastAPI application from
:class:`tiering.service.settings.ServiceSettings`; see docs/service.md.
"""
