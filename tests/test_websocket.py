"""crt_async.websocket against a real WebSocket server (``websockets``, examples/ws_server.py)
on loopback, ws:// and wss://, under asyncio and trio; plus the protocol state without the CRT."""

from __future__ import annotations

import json
import os
import random
import socket
import subprocess
import sys
import urllib.parse
import uuid

import anyio
import pytest

from crt_async import ConnectError, ConnectTimeout, RemoteProtocolError, TLSConfig, websocket
from crt_async._websocket_protocol import (
    BINARY,
    CLOSE,
    CONTINUATION,
    PING,
    PONG,
    TEXT,
    Pings,
    WebSocketProtocol,
    check_close,
    close_payload,
    parse_close,
)
from crt_async.websocket import ConnectionClosed, HandshakeError

from .conftest import ROOT, LocalServer, WebSocketServer

KIB = 1024
MIB = 1024 * KIB


def _name() -> str:
    return uuid.uuid4().hex


def _url(server: WebSocketServer, scheme: str, path: str) -> str:
    return (server.wss_url if scheme == "wss" else server.ws_url) + path


def _tls(server: WebSocketServer, scheme: str) -> TLSConfig | None:
    return TLSConfig(ca_file=server.ca_file) if scheme == "wss" else None


async def _server_saw(server: WebSocketServer, name: str, key: str = "close") -> object:
    return await anyio.to_thread.run_sync(server.wait_for, name, key)


@pytest.fixture(params=["ws", "wss"])
def scheme(request: pytest.FixtureRequest) -> str:
    return str(request.param)


# -- against the server, both loops -------------------------------------------------------


@pytest.mark.anyio
async def test_echo_of_text_and_binary_messages_from_0_bytes_to_4_mib(
    ws_server: WebSocketServer, scheme: str, crt_thread_errors: list[BaseException]
) -> None:
    sizes = [0, 1, 125, 126, 65535, 65536, 65537, MIB, 4 * MIB]
    name = _name()
    async with websocket.connect(
        _url(ws_server, scheme, f"/echo?id={name}"), tls=_tls(ws_server, scheme)
    ) as ws:
        for size in sizes:
            data = random.randbytes(size)
            await ws.send(data)
            assert await ws.receive() == data
            text = "".join(random.choice("aé✓😀") for _ in range(size // 4))
            await ws.send(text)
            assert await ws.receive() == text
        assert ws.close_code is None
    assert ws.close_code == 1000
    assert await _server_saw(ws_server, name) == [1000, ""]
    assert crt_thread_errors == []


@pytest.mark.anyio
async def test_fragmented_messages_with_pings_between_fragments_are_reassembled(
    ws_server: WebSocketServer, scheme: str
) -> None:
    from ws_server import BINARY as SERVER_BINARY
    from ws_server import TEXT as SERVER_TEXT

    async with websocket.connect(
        _url(ws_server, scheme, "/fragmented"), tls=_tls(ws_server, scheme)
    ) as ws:
        assert await ws.receive() == SERVER_TEXT  # fragments split multi-byte characters
        assert await ws.receive() == SERVER_BINARY
        await ws.send("still usable")
        assert await ws.receive() == "still usable"


@pytest.mark.anyio
async def test_a_ping_from_the_server_is_answered(ws_server: WebSocketServer, scheme: str) -> None:
    async with websocket.connect(
        _url(ws_server, scheme, "/ping"), tls=_tls(ws_server, scheme)
    ) as ws:
        assert await ws.receive() == "pong received"  # the server waited for our pong


@pytest.mark.anyio
async def test_ping_returns_when_the_matching_pong_arrives(ws_server: WebSocketServer) -> None:
    async with websocket.connect(ws_server.ws_url + "/echo") as ws:
        await ws.ping()
        await ws.ping(b"payload")
        await ws.ping("text payload")
        with anyio.fail_after(5):
            async with anyio.create_task_group() as group:
                for index in range(10):  # concurrent pings, each answered by its own pong
                    group.start_soon(ws.ping, f"ping {index}")
        with pytest.raises(ValueError, match="125"):
            await ws.ping(b"x" * 126)
        with pytest.raises(TypeError):
            await ws.ping(42)  # type: ignore[arg-type]


@pytest.mark.anyio
async def test_ping_without_a_pong_raises_once_the_connection_closes(
    ws_server: WebSocketServer,
) -> None:
    async with websocket.connect(ws_server.ws_url + "/close?code=4003") as ws:
        # The server closes right away; the ping gets no pong.
        with anyio.fail_after(5), pytest.raises(ConnectionClosed) as caught:
            while True:
                await ws.ping()
        assert caught.value.code == 4003


@pytest.mark.anyio
@pytest.mark.parametrize(("code", "reason"), [(4001, "custom reason ✓"), (1011, "")])
async def test_a_server_close_with_code_and_reason_reaches_receive_and_is_answered(
    ws_server: WebSocketServer, code: int, reason: str, scheme: str
) -> None:
    name = _name()
    query = urllib.parse.urlencode({"code": code, "reason": reason, "id": name})
    async with websocket.connect(
        _url(ws_server, scheme, f"/close?{query}"), tls=_tls(ws_server, scheme)
    ) as ws:
        assert await ws.receive() == "closing"  # what arrived before the close frame comes first
        with pytest.raises(ConnectionClosed) as caught:
            await ws.receive()
        assert (caught.value.code, caught.value.reason) == (code, reason)
        with pytest.raises(ConnectionClosed):
            await ws.receive()  # and again
        with pytest.raises(ConnectionClosed):
            await ws.send("too late")
        with pytest.raises(ConnectionClosed):
            async for _ in ws:  # not a normal close: iteration raises
                pass
    assert (ws.close_code, ws.close_reason) == (code, reason)
    assert await _server_saw(ws_server, name) == [code, ""]  # we echoed the code


@pytest.mark.anyio
@pytest.mark.parametrize("code", [1000, 1001])
async def test_iteration_ends_cleanly_at_a_normal_close(
    ws_server: WebSocketServer, code: int
) -> None:
    async with websocket.connect(ws_server.ws_url + f"/close?code={code}") as ws:
        assert [message async for message in ws] == ["closing"]
    assert ws.close_code == code


@pytest.mark.anyio
async def test_aclose_performs_the_closing_handshake(
    ws_server: WebSocketServer, scheme: str
) -> None:
    name = _name()
    async with websocket.connect(
        _url(ws_server, scheme, f"/echo?id={name}"), tls=_tls(ws_server, scheme)
    ) as ws:
        await ws.send("hello")
        await ws.aclose(4002, "done here")  # the unread echo is dropped
        assert (ws.close_code, ws.close_reason) == (4002, "done here")  # the server's echo
        with pytest.raises(ConnectionClosed) as caught:
            await ws.receive()
        assert caught.value.code == 4002
        with pytest.raises(ConnectionClosed):
            await ws.send(b"after close")
        with pytest.raises(ConnectionClosed):
            await ws.ping()
        await ws.aclose()  # again: nothing more
    assert await _server_saw(ws_server, name) == [4002, "done here"]


@pytest.mark.anyio
async def test_aclose_rejects_codes_and_reasons_that_may_not_be_sent(
    ws_server: WebSocketServer,
) -> None:
    async with websocket.connect(ws_server.ws_url + "/echo") as ws:
        for code in [999, 1004, 1005, 1006, 1015, 2000, 5000]:
            with pytest.raises(ValueError, match="may not be sent"):
                await ws.aclose(code)
        with pytest.raises(ValueError, match="123"):
            await ws.aclose(1000, "x" * 124)
        with pytest.raises(TypeError):
            await ws.aclose("1000")  # type: ignore[arg-type]
        await ws.send("still open")
        assert await ws.receive() == "still open"


@pytest.mark.anyio
async def test_a_message_over_max_message_size_fails_the_connection_with_1009(
    ws_server: WebSocketServer, scheme: str
) -> None:
    name = _name()
    async with websocket.connect(
        _url(ws_server, scheme, f"/message?size={4 * MIB}&id={name}"),
        tls=_tls(ws_server, scheme),
        max_message_size=MIB,
        read_window=64 * KIB,
    ) as ws:
        with pytest.raises(ConnectionClosed) as caught:
            await ws.receive()
        assert caught.value.code == 1009
        assert ws.buffered_bytes == 0  # nothing of it was kept
    assert ws.close_code == 1009
    code, _ = await _server_saw(ws_server, name)  # type: ignore[misc]
    assert code == 1009


@pytest.mark.anyio
@pytest.mark.parametrize("kind", ["text", "binary"])
async def test_a_message_of_exactly_max_message_size_is_delivered(
    ws_server: WebSocketServer, kind: str
) -> None:
    from ws_server import pattern

    async with websocket.connect(
        ws_server.ws_url + f"/message?size={MIB}&kind={kind}",
        max_message_size=MIB,
        read_window=64 * KIB,  # smaller than the message: it still completes
    ) as ws:
        message = await ws.receive()
    assert message == (pattern(MIB).decode() if kind == "text" else pattern(MIB))


@pytest.mark.anyio
async def test_a_text_message_that_is_not_utf8_fails_the_connection(
    ws_server: WebSocketServer,
) -> None:
    async with websocket.connect(ws_server.ws_url + "/bad-utf8") as ws:
        with pytest.raises(ConnectionClosed) as caught:
            await ws.receive()
    # The CRT's decoder rejects it before we see the payload: it sends an empty close
    # frame and drops the connection, so no close frame came back (1006).
    assert caught.value.code == 1006
    cause = caught.value.__cause__
    assert isinstance(cause, RemoteProtocolError)
    assert cause.crt_error_name == "AWS_ERROR_HTTP_WEBSOCKET_PROTOCOL_ERROR"


@pytest.mark.anyio
async def test_a_connection_lost_without_a_close_frame_is_closed_with_1006(
    ws_server: WebSocketServer,
) -> None:
    async with websocket.connect(ws_server.ws_url + "/drop") as ws:
        assert await ws.receive() == "dropping"
        with pytest.raises(ConnectionClosed) as caught:
            await ws.receive()
        with pytest.raises(ConnectionClosed) as refused:
            await ws.send("anyone there?")
    assert caught.value.code == ws.close_code == refused.value.code == 1006
    assert isinstance(caught.value.__cause__, RemoteProtocolError)
    assert isinstance(refused.value.__cause__, RemoteProtocolError)


@pytest.mark.anyio
async def test_aclose_from_another_task_ends_a_waiting_receive(
    ws_server: WebSocketServer,
) -> None:
    async with websocket.connect(ws_server.ws_url + "/echo") as ws:

        async def close_soon() -> None:
            await anyio.wait_all_tasks_blocked()
            await ws.aclose(4005, "from elsewhere")

        with anyio.fail_after(5):
            async with anyio.create_task_group() as group:
                group.start_soon(close_soon)
                with pytest.raises(ConnectionClosed) as caught:
                    await ws.receive()
    assert caught.value.code == 4005


@pytest.mark.anyio
async def test_connect_timeout_bounds_a_handshake_the_server_never_answers() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()  # TCP connects (backlog), nobody ever answers the upgrade
        port = listener.getsockname()[1]
        with anyio.fail_after(5), pytest.raises(ConnectTimeout):
            async with websocket.connect(f"ws://127.0.0.1:{port}/", connect_timeout=0.3):
                pass


@pytest.mark.anyio
async def test_a_slow_reader_holds_the_server_back_with_bounded_buffering(
    ws_server: WebSocketServer,
) -> None:
    count, size, window = 2048, 64 * KIB, MIB  # 128 MiB offered
    name = _name()
    async with websocket.connect(
        ws_server.ws_url + f"/flood?count={count}&size={size}&id={name}", read_window=window
    ) as ws:
        first = await ws.receive()
        assert int.from_bytes(first[:8], "big") == 0
        # The slow reader: it reads nothing for a second while the server keeps sending.
        most = 0
        for _ in range(20):
            await anyio.sleep(0.05)
            most = max(most, ws.buffered_bytes)
        sent_while_idle = ws_server.seen(name)["sent"]
        print(
            f"idle: {most / MIB:.2f} MiB buffered at most; server got"
            f" {sent_while_idle * size / MIB:.1f} MiB of {count * size / MIB:.0f} MiB out"
        )
        assert most <= window
        # The rest sits in socket buffers: far from all 128 MiB.
        assert sent_while_idle * size < 32 * MIB
        for index in range(1, count):
            message = await ws.receive()
            assert int.from_bytes(message[:8], "big") == index
            assert len(message) == size
            most = max(most, ws.buffered_bytes)
        assert most <= window + size
        assert ws_server.seen(name)["sent"] == count


@pytest.mark.anyio
async def test_cancelled_receives_lose_no_message(
    ws_server: WebSocketServer, crt_thread_errors: list[BaseException]
) -> None:
    rng = random.Random(8)
    messages = [rng.randbytes(rng.randrange(1, 200 * KIB)) for _ in range(100)]
    received: list[bytes] = []
    cancelled = 0
    async with websocket.connect(ws_server.ws_url + "/echo", read_window=256 * KIB) as ws:

        async def sender() -> None:
            for message in messages:
                await ws.send(message)

        async with anyio.create_task_group() as group:
            group.start_soon(sender)
            with anyio.fail_after(30):
                while len(received) < len(messages):
                    with anyio.move_on_after(rng.uniform(-0.001, 0.003)) as scope:
                        received.append(await ws.receive())  # type: ignore[arg-type]
                    cancelled += scope.cancelled_caught
        await ws.send("still usable")
        assert await ws.receive() == "still usable"
    assert received == messages
    assert cancelled > 0
    assert crt_thread_errors == []


@pytest.mark.anyio
async def test_cancelled_sends_lose_nothing_and_cut_nothing_short(
    ws_server: WebSocketServer, crt_thread_errors: list[BaseException]
) -> None:
    rng = random.Random(9)
    messages = [rng.randbytes(rng.randrange(1, 512 * KIB)) for _ in range(60)]
    cancelled = 0
    async with websocket.connect(ws_server.ws_url + "/echo") as ws:
        received: list[bytes] = []

        async def receiver() -> None:
            while len(received) < len(messages):
                received.append(await ws.receive())  # type: ignore[arg-type]

        async with anyio.create_task_group() as group:
            group.start_soon(receiver)
            for message in messages:
                with anyio.move_on_after(rng.uniform(-0.001, 0.002)) as scope:
                    await ws.send(message)
                cancelled += scope.cancelled_caught
        # A cancelled send() had handed its message to the CRT whole: it still went out.
        assert received == messages
        await ws.send("still usable")
        assert await ws.receive() == "still usable"
    assert cancelled > 0
    assert crt_thread_errors == []


@pytest.mark.anyio
async def test_cancellation_at_random_points_of_whole_sessions(
    ws_server: WebSocketServer, scheme: str, crt_thread_errors: list[BaseException]
) -> None:
    rng = random.Random(10)
    tls = _tls(ws_server, scheme)
    opened: list[websocket.WebSocket] = []
    names = [_name() for _ in range(20)]
    for name in names:
        # Anywhere: connecting (wss: ~50 ms here), sending, receiving, pinging, closing.
        with anyio.move_on_after(rng.uniform(0, 0.1)):
            url = _url(ws_server, scheme, f"/echo?id={name}")
            async with websocket.connect(url, tls=tls) as ws:
                opened.append(ws)
                for size in [10, 100_000, 1]:
                    await ws.send(b"x" * size)
                    assert await ws.receive() == b"x" * size
                    await ws.ping()
    assert opened
    for ws in opened:  # every connection that opened was shut down when its block was left
        assert ws._shut_down.is_set()
    # None is left open, even one whose caller gave up while connecting (here, over wss,
    # the server often completed the handshake for a caller that had given up).
    for name in names:
        if ws_server.seen(name).get("open"):
            await _server_saw(ws_server, name)
    async with websocket.connect(_url(ws_server, scheme, "/echo"), tls=tls) as ws:
        await ws.send("after all that")
        assert await ws.receive() == "after all that"
    assert crt_thread_errors == []


@pytest.mark.anyio
async def test_leaving_the_block_by_cancellation_still_closes_the_connection(
    ws_server: WebSocketServer,
) -> None:
    name = _name()
    with anyio.move_on_after(0.2) as scope:
        async with websocket.connect(ws_server.ws_url + f"/echo?id={name}") as ws:
            await ws.receive()  # nothing comes: cancelled here
    assert scope.cancelled_caught
    assert ws._shut_down.is_set()  # the CRT's last callback (shutdown) has run
    assert ws.close_code is not None
    assert await _server_saw(ws_server, name) == [1000, ""]


@pytest.mark.anyio
async def test_no_crt_callback_outlives_the_block(
    ws_server: WebSocketServer, crt_thread_errors: list[BaseException]
) -> None:
    for _ in range(20):
        async with websocket.connect(ws_server.ws_url + "/flood?count=100&size=1000") as ws:
            await ws.receive()
        assert ws._shut_down.is_set()  # shutdown is the CRT's last callback
    assert crt_thread_errors == []


@pytest.mark.anyio
async def test_only_one_task_may_receive_at_a_time(ws_server: WebSocketServer) -> None:
    async with websocket.connect(ws_server.ws_url + "/echo") as ws:
        async with anyio.create_task_group() as group:
            group.start_soon(ws.receive)
            await anyio.wait_all_tasks_blocked()
            with pytest.raises(anyio.BusyResourceError):
                await ws.receive()
            group.cancel_scope.cancel()


@pytest.mark.anyio
async def test_a_refused_handshake_carries_status_headers_and_body(
    ws_server: WebSocketServer, scheme: str
) -> None:
    with pytest.raises(HandshakeError) as caught:
        async with websocket.connect(
            _url(ws_server, scheme, "/reject"), tls=_tls(ws_server, scheme)
        ):
            pass
    error = caught.value
    assert isinstance(error, ConnectError)
    assert error.status == 403
    assert error.headers["x-refused"] == "yes"
    assert error.body == b"refused"


@pytest.mark.anyio
async def test_wss_offers_only_http11_even_when_the_tls_config_offers_h2(
    h2_server: LocalServer, tls: TLSConfig
) -> None:
    assert tls.alpn[0] == "h2"
    url = h2_server.https_url.replace("https://", "wss://") + "/"
    with pytest.raises(HandshakeError) as caught:  # the HTTP server has no WebSocket endpoint
        async with websocket.connect(url, tls=tls):
            pass
    assert caught.value.headers["server"] == "hypercorn-h11"  # it answered over HTTP/1.1


@pytest.mark.anyio
async def test_headers_and_subprotocols_are_sent_and_the_choice_reported(
    ws_server: WebSocketServer,
) -> None:
    async with websocket.connect(
        ws_server.ws_url + "/headers?x=1",
        headers={"x-token": "abc", "user-agent": "crt_async-test"},
        subprotocols=["superchat", "chat"],
    ) as ws:
        report = json.loads(await ws.receive())  # type: ignore[arg-type]
    headers = {name.lower(): value for name, value in report["headers"]}
    assert headers["x-token"] == "abc"
    assert headers["sec-websocket-protocol"] == "superchat, chat"
    assert headers["host"] == ws_server.ws_url.removeprefix("ws://")
    assert report["subprotocol"] == ws.subprotocol == "superchat"
    assert ws.response_headers["upgrade"].lower() == "websocket"


@pytest.mark.anyio
async def test_a_subprotocol_that_was_not_offered_fails_the_handshake(
    ws_server: WebSocketServer,
) -> None:
    with pytest.raises(HandshakeError, match="101 response") as caught:
        async with websocket.connect(ws_server.ws_url + "/echo", subprotocols=["want-unoffered"]):
            pass
    assert caught.value.status == 101
    assert caught.value.headers["sec-websocket-protocol"] == "not-offered"


@pytest.mark.anyio
async def test_bad_arguments_raise_before_any_io(ws_server: WebSocketServer) -> None:
    tls = TLSConfig(ca_file=ws_server.ca_file)
    cases: list[tuple[dict[str, object], type[Exception]]] = [
        ({"url": "http://127.0.0.1/"}, ValueError),
        ({"url": ws_server.ws_url + "/#frag"}, ValueError),
        ({"url": ws_server.ws_url + "/a b"}, ValueError),
        ({"url": ws_server.ws_url, "tls": tls}, ValueError),
        ({"url": ws_server.wss_url, "tls": "yes"}, TypeError),
        ({"url": ws_server.ws_url, "max_message_size": 0}, ValueError),
        ({"url": ws_server.ws_url, "read_window": -1}, ValueError),
        ({"url": ws_server.ws_url, "headers": {"upgrade": "h2c"}}, ValueError),
        ({"url": ws_server.ws_url, "headers": {"sec-websocket-protocol": "x"}}, ValueError),
        ({"url": ws_server.ws_url, "headers": {"x-bad": "a\r\nb"}}, ValueError),
        ({"url": ws_server.ws_url, "subprotocols": "chat"}, ValueError),
        ({"url": ws_server.ws_url, "subprotocols": ["bad token"]}, ValueError),
        ({"url": ws_server.ws_url, "connect_timeout": 0}, ValueError),
    ]
    for kwargs, error in cases:
        url = kwargs.pop("url")
        with pytest.raises(error):
            async with websocket.connect(url, **kwargs):  # type: ignore[arg-type]
                pass
    async with websocket.connect(ws_server.ws_url + "/echo") as ws:
        with pytest.raises(TypeError):
            await ws.send(42)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="UTF-8"):
            await ws.send("\ud800")


@pytest.mark.anyio
async def test_a_refused_tcp_connection_raises_connect_error() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, not listening: connections are refused
        with pytest.raises(ConnectError):
            async with websocket.connect(f"ws://127.0.0.1:{port}/"):
                pass


def test_the_websocket_example_runs_on_both_loops() -> None:
    environment = {**os.environ, "PYTHONPATH": str(ROOT)}  # this checkout's crt_async
    result = subprocess.run(
        [sys.executable, "examples/websocket_echo.py"],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert "--- trio ---" in result.stdout
    assert result.stdout.rstrip().endswith("OK")


# -- the protocol state alone (no CRT, no loop) --------------------------------------------


class _Rings:
    def __init__(self) -> None:
        self.count = 0

    def __call__(self) -> None:
        self.count += 1


def _frame(protocol: WebSocketProtocol, opcode: int, payload: bytes, fin: bool = True) -> None:
    protocol.on_frame_begin(opcode, len(payload), fin)
    if payload:
        protocol.on_frame_payload(payload)
    protocol.on_frame_complete(None, fin)


def test_fragments_with_a_control_frame_between_them_make_one_message() -> None:
    rings = _Rings()
    protocol = WebSocketProtocol(max_message_size=100, read_window=100, notify=rings)
    text = "ünïcode".encode()
    _frame(protocol, TEXT, text[:1], fin=False)  # splits a two-byte character
    _frame(protocol, PONG, b"p")
    _frame(protocol, CONTINUATION, text[1:], fin=False)
    _frame(protocol, CONTINUATION, b"", fin=True)
    assert rings.count == 1  # the pong; nobody waits for messages
    actions = protocol.take_actions()
    assert actions.pongs == [b"p"]
    assert protocol.buffered_bytes == len(text)
    assert protocol.next_message() == ("ünïcode", 0)  # credit batched until a quarter window
    assert protocol.buffered_bytes == 0


def test_the_read_window_reopens_as_messages_are_taken() -> None:
    protocol = WebSocketProtocol(max_message_size=1000, read_window=100, notify=_Rings())
    for index in range(10):
        _frame(protocol, BINARY, bytes([index]) * 10)
    assert protocol.take_actions().credit == 0  # nothing taken: nothing given back
    credits = []
    for index in range(10):
        message, credit = protocol.next_message()
        assert message == bytes([index]) * 10
        credits.append(credit)
    assert credits == [0, 0, 30, 0, 0, 30, 0, 0, 30, 0]  # batched by a quarter window
    assert protocol.next_message() == (None, 10)  # the rest before the reader waits


def test_a_message_larger_than_the_window_is_given_back_while_the_reader_waits() -> None:
    rings = _Rings()
    protocol = WebSocketProtocol(max_message_size=1000, read_window=100, notify=rings)
    protocol.on_frame_begin(BINARY, 300, True)
    protocol.on_frame_payload(b"a" * 100)  # the window is used up; nobody waits
    assert rings.count == 0
    assert protocol.next_message() == (None, 100)  # the reader waits: given back at once
    protocol.on_frame_payload(b"b" * 60)  # over half the window: ring the loop
    assert rings.count == 1
    assert protocol.take_actions().credit == 60
    protocol.on_frame_payload(b"c" * 140)
    protocol.on_frame_complete(None, True)
    actions = protocol.take_actions()
    assert actions.wake_reader
    assert actions.credit == 0
    message, credit = protocol.next_message()
    assert message == b"a" * 100 + b"b" * 60 + b"c" * 140
    assert credit == 140  # the rest was given back already


def test_an_oversize_message_is_refused_at_its_header_and_its_payload_dropped() -> None:
    rings = _Rings()
    protocol = WebSocketProtocol(max_message_size=10, read_window=100, notify=rings)
    _frame(protocol, TEXT, b"fine")
    protocol.on_frame_begin(BINARY, 8, False)
    protocol.on_frame_payload(b"12345678")
    protocol.on_frame_begin(CONTINUATION, 5, True)  # 13 > 10
    assert rings.count == 1
    protocol.on_frame_payload(b"abcde")
    protocol.on_frame_complete(None, True)
    actions = protocol.take_actions()
    assert actions.close_frame == (1009, "message over 10 bytes")
    assert actions.credit == 8 + 5
    assert protocol.buffered_bytes == 4
    assert protocol.next_message() == ("fine", 0)  # what arrived before still counts
    with pytest.raises(ConnectionClosed) as caught:
        protocol.next_message()
    assert caught.value.code == 1009


def test_a_text_message_that_is_not_utf8_fails_with_1007() -> None:
    protocol = WebSocketProtocol(max_message_size=10, read_window=100, notify=_Rings())
    _frame(protocol, TEXT, b"ok \xff")
    actions = protocol.take_actions()
    assert actions.close_frame == (1007, "text message is not valid UTF-8")
    assert actions.credit == 4
    assert protocol.buffered_bytes == 0
    with pytest.raises(ConnectionClosed) as caught:
        protocol.next_message()
    assert caught.value.code == 1007


def test_a_close_frame_in_the_middle_of_a_message_drops_the_fragments() -> None:
    protocol = WebSocketProtocol(max_message_size=10, read_window=100, notify=_Rings())
    _frame(protocol, BINARY, b"part", fin=False)
    assert protocol.buffered_bytes == 4
    _frame(protocol, CLOSE, close_payload(1001, ""))
    assert protocol.buffered_bytes == 0
    assert protocol.take_actions().close_frame == (1001, "")


def test_our_close_drops_unread_messages_and_gives_their_window_back() -> None:
    protocol = WebSocketProtocol(max_message_size=10, read_window=100, notify=_Rings())
    _frame(protocol, BINARY, b"12345")
    _frame(protocol, TEXT, b"abc", fin=False)
    assert protocol.begin_close(1000, "") == (True, 8)
    assert protocol.begin_close(1000, "") == (False, 0)  # only one close frame
    assert protocol.buffered_bytes == 0
    _frame(protocol, BINARY, b"late")  # dropped, its window given back
    assert protocol.take_actions().credit == 4
    with pytest.raises(ConnectionClosed):
        protocol.next_message()


def test_a_close_frame_is_answered_with_its_code() -> None:
    protocol = WebSocketProtocol(max_message_size=10, read_window=100, notify=_Rings())
    _frame(protocol, CLOSE, close_payload(4000, "bye"))
    actions = protocol.take_actions()
    assert actions.close_frame == (4000, "")
    assert actions.ended
    assert protocol.close_info == (4000, "bye")
    with pytest.raises(ConnectionClosed):
        protocol.check_open()


@pytest.mark.parametrize(
    ("payload", "expected"),
    [(b"", None), (b"\x03", 1002), ((1005).to_bytes(2, "big"), 1002), (b"\x03\xe8\xff", 1002)],
)
def test_close_frames_from_the_peer_are_checked(payload: bytes, expected: int | None) -> None:
    protocol = WebSocketProtocol(max_message_size=10, read_window=100, notify=_Rings())
    _frame(protocol, CLOSE, payload)
    actions = protocol.take_actions()
    assert actions.close_frame == (expected, "" if expected is None else actions.close_frame[1])  # type: ignore[index]


def test_close_codes_and_payloads() -> None:
    assert parse_close(close_payload(1000, "ok ✓")) == (1000, "ok ✓")
    assert parse_close(b"") == (1005, "")
    assert close_payload(None, "") == b""
    check_close(4999, "x" * 123)
    for bad in [1004, 1005, 1006, 1015, 2999, 5000]:
        with pytest.raises(ValueError, match="may not be sent"):
            check_close(bad, "")
        with pytest.raises(ValueError, match="invalid code"):
            parse_close(close_payload(bad, ""))


def test_a_pong_answers_its_ping_and_every_earlier_one() -> None:
    pings: Pings[str] = Pings()
    pings.add(b"1", "first")
    pings.add(b"2", "second")
    pings.add(b"3", "third")
    assert pings.acknowledge(b"unsolicited") == []
    assert pings.acknowledge(b"2") == ["first", "second"]
    pings.discard("third")
    assert pings.take_all() == []


def test_a_ping_from_the_peer_needs_nothing_from_the_loop() -> None:
    rings = _Rings()
    protocol = WebSocketProtocol(max_message_size=10, read_window=100, notify=rings)
    _frame(protocol, PING, b"hi")  # the CRT answers it
    assert rings.count == 0
