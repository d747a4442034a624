from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "accounts"
    verbose_name = "Accounts"

    def ready(self) -> None:
        from django.contrib.auth.signals import user_logged_in

        from accounts.signals import join_session_conversations

        user_logged_in.connect(join_session_conversations, dispatch_uid="accounts.join_session_conversations")
