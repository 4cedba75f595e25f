"""A Django backend using django-grip, for test_http_stream_django.py.

Run as a script: binds a free loopback port and prints it, then reads the URL of the
GRIP proxy's control API from stdin (the proxy starts once it knows the backend's port),
and serves.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, make_server

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        return None


def django_app(control_url: str) -> WsgiApp:
    """Configure Django with django-grip publishing to ``control_url``; its WSGI app."""
    import django
    from django.conf import settings

    settings.configure(
        DEBUG=False,
        SECRET_KEY="p8-test",
        ALLOWED_HOSTS=["*"],
        ROOT_URLCONF=__name__,
        MIDDLEWARE=["django_grip.GripMiddleware"],
        GRIP_PROXIES=[{"control_uri": control_url, "key": "changeme"}],
    )
    django.setup()
    from django.core.handlers.wsgi import WSGIHandler

    return WSGIHandler()


def stream(request: Any) -> Any:
    """Hold the client as a stream on channel ``news``, when p8 signed the request."""
    import django_grip
    from django.http import HttpResponse

    if not request.grip.proxied:
        return HttpResponse("not through a GRIP proxy\n", status=400)
    django_grip.set_hold_stream(request, "news")
    return HttpResponse("welcome from django\n", content_type="text/plain")


def send(request: Any) -> Any:
    """Publish ``?text=`` on ``news`` through the proxy's control API."""
    import django_grip
    from django.http import HttpResponse
    from gripcontrol import HttpStreamFormat

    django_grip.publish("news", HttpStreamFormat(request.GET["text"] + "\n"), blocking=True)
    return HttpResponse("sent\n", content_type="text/plain")


def __getattr__(name: str) -> Any:
    # Django reads ``urlpatterns`` only after settings are configured.
    if name == "urlpatterns":
        from django.urls import path

        return [path("stream", stream), path("send", send)]
    raise AttributeError(name)


def main() -> None:
    app: list[WsgiApp] = []
    server = make_server("127.0.0.1", 0, lambda env, start: app[0](env, start),
                         handler_class=QuietHandler)
    print(server.server_port, flush=True)
    app.append(django_app(sys.stdin.readline().strip()))
    server.serve_forever()


if __name__ == "__main__":
    main()
