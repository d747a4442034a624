import unicodedata

from django import forms
from django.conf import settings


class QuestionForm(forms.Form):
    question = forms.CharField(strip=True, required=False)
    conversation = forms.UUIDField(required=False)

    def clean_question(self) -> str:
        question: str = self.cleaned_data["question"]
        if not question:
            raise forms.ValidationError("The question is empty.", code="empty")
        limit = settings.CHAT_MAX_QUESTION_CHARS
        if len(question) > limit:
            raise forms.ValidationError(
                f"The question is {len(question):,} characters long; the limit is {limit:,}.", code="too_long"
            )
        if any(unicodedata.category(ch) == "Cc" and ch not in "\n\t" for ch in question):
            raise forms.ValidationError("The question contains control characters.", code="control_characters")
        return question.replace("\r\n", "\n")


class ConversationPageForm(forms.Form):
    """Which page of a conversation: the messages before the message `before`, at most `limit` of them."""

    before = forms.UUIDField(required=False)
    limit = forms.IntegerField(required=False, min_value=1)
