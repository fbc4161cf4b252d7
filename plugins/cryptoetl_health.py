"""The "Data health" page of the Airflow UI: coverage heatmaps, quality results, freshness and the
health check's fill actions, read from the cryptoetl warehouse (read-only).

Airflow 3.1+ UI plugin: a FastAPI app mounted by the API server under ``URL_PREFIX`` (the page is
``http://<airflow>/cryptoetl-health/``) and an external view that adds **Data health** to the
navigation bar and shows that page in an iframe at ``/plugin/data-health``.

**Auth.** Airflow does not protect a plugin's FastAPI app by itself. Every route of this app depends
on Airflow's own ``requires_access_view(AccessView.WEBSITE)``
(``airflow.api_fastapi.core_api.security``): the user's JWT, from the ``_token`` cookie the UI sets
at login (the iframe is same-origin, so the browser sends it) or an ``Authorization: Bearer``
header, is validated by the configured auth manager, which must also let that user see the website.
No token: 401; an invalid or expired one: 401/403; a user without website access: 403.

**Cheap to import.** Airflow imports every plugin file in every task process too (the task runner
loads plugins for their macros), so this module imports nothing but ``AirflowPlugin``: FastAPI, the
auth dependency, the warehouse code and the page (``cryptoetl_health_page``) are imported when the
API server first serves the page (``_LazyApp``).
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

URL_PREFIX = "/cryptoetl-health"  # where the API server mounts the app
URL_ROUTE = "data-health"  # the UI page that frames it: /plugin/data-health


class _LazyApp:
    """An ASGI app that builds the FastAPI app on its first request (see the module docstring)."""

    def __init__(self) -> None:
        self._app = None

    def get(self):
        if self._app is None:
            from cryptoetl_health_page import create_app  # a sibling module: the plugins folder is on sys.path

            self._app = create_app()
        return self._app

    async def __call__(self, scope, receive, send) -> None:
        await self.get()(scope, receive, send)


app = _LazyApp()


class CryptoetlHealthPlugin(AirflowPlugin):
    name = "cryptoetl_health"
    fastapi_apps = [{"app": app, "url_prefix": URL_PREFIX, "name": "cryptoetl data health"}]
    external_views = [{
        "name": "Data health",
        # Relative: the UI resolves it against its own base URL (its <base href>), so the page works
        # under a proxy prefix too. The trailing slash is the app's root route.
        "href": URL_PREFIX.lstrip("/") + "/",
        "url_route": URL_ROUTE,
        "destination": "nav",
        "nav_top_level": True,  # on the nav bar itself, not in the Plugins submenu
        "icon": URL_PREFIX.lstrip("/") + "/icon.svg",  # relative, like href; served without auth
    }]
