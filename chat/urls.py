from django.urls import path

from chat import views

app_name = "chat"
urlpatterns = [
    path("movies/<slug:slug>/chat/", views.ask_movie, name="ask_movie"),
    path("chat/", views.ask_all, name="ask_all"),
    path("chat/messages/<uuid:message_id>/stream/", views.stream, name="stream"),
    path("chat/messages/<uuid:message_id>/stop/", views.stop, name="stop"),
    path("chat/messages/<uuid:message_id>/regenerate/", views.regenerate, name="regenerate"),
    path("chat/conversations/<uuid:conversation_id>/", views.conversation_detail, name="conversation"),
    path("chat/history/", views.history_list, name="history"),
    path("chat/conversations/<uuid:conversation_id>/delete/", views.delete_conversation, name="delete"),
    path("chat/conversations/<uuid:conversation_id>/export.md", views.export_conversation, name="export"),
]
