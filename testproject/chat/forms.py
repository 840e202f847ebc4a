from django import forms
from django.utils.text import slugify

from .models import Room


class RoomForm(forms.ModelForm):
    """Create a room from a title; the slug (its URL and group) is derived."""

    class Meta:
        model = Room
        fields = ["title"]

    def clean_title(self) -> str:
        title = self.cleaned_data["title"].strip()
        slug = slugify(title)[:50]
        if not slug:
            raise forms.ValidationError("Use at least one letter or digit.")
        if Room.objects.filter(slug=slug).exists():
            raise forms.ValidationError("A room with this name already exists.")
        self.instance.slug = slug
        return title
