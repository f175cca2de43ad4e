"""The server app built by create_app, through the test kit's HTTP client."""

from litestar import get

from im import hookimpl
from im.testing import http_client, make_runtime


class RoutePlugin:
    @hookimpl
    def register_routes(self, register):
        @get("/hello", sync_to_thread=False)
        def hello() -> dict[str, str]:
            return {"hello": "world"}

        register(hello)


def test_health_and_plugin_routes(tmp_path):
    runtime = make_runtime(tmp_path, plugins=[RoutePlugin()])
    with http_client(runtime) as client:
        assert client.get("/health").json() == {"status": "ok", "database": "ok"}
        assert client.get("/hello").json() == {"hello": "world"}
