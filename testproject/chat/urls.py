from django.urls import path

from . import views

app_name = "chat"

urlpatterns = [
    path("", views.rooms, name="rooms"),
    path("rooms/<slug:slug>/", views.room, name="room"),
    path("rooms/<slug:slug>/messages/", views.post_message, name="post"),
    path("rooms/<slug:slug>/recent/", views.recent, name="recent"),
]
