"""One view: enqueue `shop.tasks.add` the way the engine's Django integration does."""

from django.http import HttpRequest, HttpResponse
from django.urls import path
from shop.tasks import enqueue_add


def add(request: HttpRequest) -> HttpResponse:
    return HttpResponse(enqueue_add(int(request.GET.get("a", 1)), int(request.GET.get("b", 2))))


urlpatterns = [path("add", add)]
