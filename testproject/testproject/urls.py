from django.contrib import admin
from django.http import HttpResponse
from django.urls import path


def home(request):
    return HttpResponse("channels_app demo is running\n", content_type="text/plain")


urlpatterns = [
    path("", home, name="home"),
    path("admin/", admin.site.urls),
]
