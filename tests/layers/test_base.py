"""The rules every layer shares: names, capacities and portable messages."""

import re

import pytest

from channels_app.exceptions import MessageTooLarge
from channels_app.layers import BaseChannelLayer
from channels_app.layers.messages import portable_copy


@pytest.fixture
def base():
    return BaseChannelLayer(capacity=5, channel_capacity={"slow.*": 1})


@pytest.mark.parametrize(
    "name",
    ["chat", "chat.room-1_a", "specific.abc!", "specific.abc!def-1.2", "a" * 99],
)
def test_valid_channel_names(base, name):
    assert base.require_valid_channel_name(name)


@pytest.mark.parametrize(
    ("name", "explains"),
    [
        ("chat\n", "ASCII letters"),  # Channels 4 accepted a trailing newline
        ("specific.abc!ü", "ASCII letters"),  # ... and non-ASCII after the "!"
        ("has space", "ASCII letters"),
        ("a!b!c", "one '!'"),
        ("", "ASCII letters"),
        ("a" * 100, "100 characters long"),
        (b"bytes", "must be a str, not bytes"),
        (None, "must be a str, not NoneType"),
    ],
)
def test_invalid_channel_names_explain_the_rule(base, name, explains):
    with pytest.raises(TypeError, match=re.escape(explains)):
        base.require_valid_channel_name(name)


def test_group_names_may_not_contain_bang(base):
    assert base.require_valid_group_name("room-1.a_b")
    with pytest.raises(TypeError, match="Group name 'room!x' is invalid"):
        base.require_valid_group_name("room!x")


def test_receive_on_a_process_channel_wants_the_prefix(base):
    assert base.require_valid_channel_name("specific.abc!", receive=True)
    with pytest.raises(TypeError, match=r"'specific\.abc!'"):
        base.require_valid_channel_name("specific.abc!def", receive=True)
    assert base.non_local_name("specific.abc!def") == "specific.abc!"
    assert base.non_local_name("plain") == "plain"


def test_valid_channel_names_wants_a_list(base):
    assert base.valid_channel_names(["a", "b!"])
    with pytest.raises(TypeError, match="list of channel names"):
        base.valid_channel_names("ab")


def test_capacity_patterns_first_match_wins(base):
    assert base.get_capacity("slow.lane") == 1
    assert base.get_capacity("fast.lane") == 5
    compiled = BaseChannelLayer(
        channel_capacity={re.compile(r"^http\."): 9, "http.*": 2}
    )
    assert compiled.get_capacity("http.request") == 9
    with pytest.raises(TypeError, match="glob strings or compiled"):
        BaseChannelLayer(channel_capacity={3: 1})
    with pytest.raises(TypeError, match="must be a dict of glob patterns"):
        BaseChannelLayer(channel_capacity=5)


def test_assigning_channel_capacity_takes_effect_and_reads_back_as_assigned(base):
    base.channel_capacity = {"fast.*": 50}
    assert base.channel_capacity == {"fast.*": 50}
    assert base.get_capacity("fast.lane") == 50
    assert base.get_capacity("slow.lane") == 5  # the old rules are gone
    compiled = base.compile_capacities({"slow.*": 2})
    base.channel_capacity = compiled
    assert base.channel_capacity is compiled
    assert base.get_capacity("slow.lane") == 2
    base.channel_capacity = None
    assert base.get_capacity("slow.lane") == 5


def test_a_layer_that_skips_the_base_init_still_has_capacities():
    class Bare(BaseChannelLayer):
        def __init__(self):
            self.capacity = 7

    bare = Bare()
    assert bare.get_capacity("any") == 7
    assert dict(bare.channel_capacity) == {}


def test_portable_copy_is_independent_and_keeps_values():
    message = {
        "type": "t",
        "list": [1, [2, {"x": b"y"}]],
        "tuple": (1, 2),
        "none": None,
        "float": 0.5,
    }
    copied = portable_copy(message)
    assert copied == message
    assert type(copied["tuple"]) is tuple
    message["list"][1][1]["x"] = b"changed"
    assert copied["list"][1][1]["x"] == b"y"


@pytest.mark.parametrize(
    ("message", "explains"),
    [
        ({"when": {1, 2}}, "message['when'] is a set"),
        ({"a": [0, {"b": object()}]}, "message['a'][1]['b'] is a object"),
        ({"a": {3: "x"}}, "message['a'] has the key 3 of type int"),
        ({"a": (1, 2.5j)}, "message['a'][1] is a complex"),
    ],
)
def test_unportable_values_are_refused_naming_the_key(message, explains):
    with pytest.raises(TypeError, match=re.escape(explains)):
        portable_copy(message)


def test_a_message_containing_itself_is_refused():
    message: dict = {"type": "loop"}
    message["self"] = message
    with pytest.raises(TypeError, match="contains itself"):
        portable_copy(message)


def test_non_dict_messages_are_refused():
    with pytest.raises(TypeError, match="Message must be a dict, not list"):
        portable_copy([("type", "x")])


def test_require_portable_message_estimates_size_and_enforces_a_limit(base):
    size = base.require_portable_message({"type": "x", "body": b"a" * 1000})
    assert 1000 < size < 1100
    with pytest.raises(MessageTooLarge, match="limit of 500 bytes"):
        base.require_portable_message({"body": "a" * 1000}, max_size=500)
    with pytest.raises(TypeError, match=r"message\['bad'\]"):
        base.require_portable_message({"bad": {1}})


def test_the_deprecated_channel_check_honours_receive(base):
    # Channels' alias drops ``receive``; ours passes it on, so the receive rule
    # (a process channel is received from by its prefix) is not skipped.
    with pytest.warns(DeprecationWarning), pytest.raises(TypeError, match="prefix"):
        base.valid_channel_name("specific.abc!def", receive=True)
    with pytest.warns(DeprecationWarning):
        assert base.valid_channel_name("specific.abc!", receive=True)
