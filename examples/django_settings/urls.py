"""The recipe's one view: ``POST /events`` writes the JSON body to the ``events`` table."""

import json
import os

from django.http import HttpRequest, JsonResponse
from django.urls import path
from django.views.decorators.http import require_GET, require_POST
from panoply_client import panoply


@require_POST
def post_event(request: HttpRequest) -> JsonResponse:
    panoply().write("events", json.loads(request.body))
    return JsonResponse({"accepted": True, "pid": os.getpid()})


@require_GET
def health(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"ok": True, "pid": os.getpid()})


urlpatterns = [path("events", post_event), path("health", health)]
