import base64

import pytest

from hoop_sessions.extract.events import StreamError, decode_stream


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def test_events_decode_to_the_exact_bytes_including_binary_and_invalid_utf8():
    raw = [b"SELECT 1;\n", b"\x1b[31mred\x1b[0m", b"\x00\x00\x00\x08\x04\xd2\x16/", b"\xff\xfe bad"]
    stream = decode_stream(
        [
            [0.1, "i", b64(raw[0])],
            [0.2, "o", b64(raw[1])],
            [0.3, "i", b64(raw[2])],
            [1.5, "e", b64(raw[3])],
        ],
        present=True,
    )
    assert stream.status == "ok"
    assert stream.payloads == raw
    assert stream.types == ["i", "o", "i", "e"]
    assert stream.elapsed == [0.1, 0.2, 0.3, 1.5]


def test_an_empty_payload_and_an_empty_stream_are_valid():
    assert decode_stream([[0, "o", ""]], present=True).payloads == [b""]
    empty = decode_stream([], present=True)
    assert empty.status == "ok" and empty.payloads == []


def test_an_absent_key_is_absent_or_forbidden_depending_on_visibility():
    assert decode_stream(None, present=False).status == "absent"
    assert decode_stream(None, present=False, visible=False).status == "forbidden"


def test_the_gateway_error_message_is_flagged_unreadable_not_taken_as_data():
    msg = "An internal error occurred: unable to decode the event stream: bad"
    stream = decode_stream([msg], present=True)
    assert stream.status == "unreadable"
    assert stream.message == msg
    assert stream.payloads == []


def test_rdp_and_unknown_event_types_decode_to_their_exact_bytes():
    frame = b'{"x":8,"y":0,"width":16,"height":16,"bits_per_pixel":16,"compressed":false,"data":""}'
    stream = decode_stream(
        [[0, "h", b64(b"\x03\x00hs")], [0.4, "b", b64(frame)], [0.5, "x", "aGk="]], present=True
    )
    assert stream.status == "ok"
    assert stream.types == ["h", "b", "x"]
    assert stream.payloads == [b"\x03\x00hs", frame, b"hi"]
    assert stream.elapsed == [0.0, 0.4, 0.5]


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ({"a": 1}, "expected a list"),
        (["aGVsbG8="], "single string"),
        ([[0.1, "i"]], "triple"),
        ([[0.1, 7, "aGk="]], "type that is not a string"),
        ([["0.1", "i", "aGk="]], "non-numeric"),
        ([[True, "i", "aGk="]], "non-numeric"),
        ([[-1.0, "i", "aGk="]], "invalid elapsed"),
        ([[float("nan"), "i", "aGk="]], "invalid elapsed"),
        ([[0.1, "i", "not base64!"]], "not valid base64"),
        ([[0.1, "i", "aGk"]], "not valid base64"),
        ([[0.1, "i", 5]], "not a base64 string"),
        ([[0.1, "i", "aGk\u00e9"]], "not valid base64"),
    ],
)
def test_malformed_streams_are_refused_with_a_reason(value, reason):
    with pytest.raises(StreamError, match=reason):
        decode_stream(value, present=True)
