"""The moderation pass masks blocked words and leaves everything else alone."""

from django.test import override_settings

from chat.moderation import mask


def test_blocked_words_keep_their_first_letter():
    assert mask("well darn it") == "well d*** it"


def test_matching_ignores_case_and_keeps_the_original_letter():
    assert mask("DARN and Heck") == "D*** and H***"


def test_only_whole_words_are_masked():
    assert mask("darnation heckle") == "darnation heckle"


def test_punctuation_around_a_word_is_kept():
    assert mask("(darn), heck!") == "(d***), h***!"


def test_clean_text_is_returned_unchanged():
    assert mask("hello there") == "hello there"


@override_settings(CHAT_BLOCKED_WORDS=["spam", "a.b"])
def test_the_word_list_comes_from_settings_and_is_not_a_regex():
    assert mask("darn spam") == "darn s***"
    assert mask("axb a.b") == "axb a**"


@override_settings(CHAT_BLOCKED_WORDS=[])
def test_an_empty_list_masks_nothing():
    assert mask("darn") == "darn"
