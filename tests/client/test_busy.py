"""Busy answers: a real HTTP proxy on 127.0.0.1 in front of the real server answers 503/429
for a path a given number of times, then forwards; and the server's own login lockout."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from typer.testing import CliRunner

from ronghe.cli import app
from ronghe.client import BusyError, Client, Policy, RateLimitedError
from tests.conftest import PASSWORD
from tests.server_support import Server, ronghe_server

FAST = Policy(max_retries=3, retry_base=0.01, max_retry_wait=0.05)


@dataclass
class Rule:
    times: int
    status: int = 503
    retry_after: str | None = "0"


@dataclass
class Proxy:
    upstream: str
    url: str = ""
    rules: dict[str, Rule] = field(default_factory=dict)
    seen: list[str] = field(default_factory=list)

    def count(self, path: str) -> int:
        return self.seen.count(path)


def _handler(proxy: Proxy) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def _reply(self, status: int, headers: dict[str, str], body: bytes) -> None:
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _handle(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            path = self.path.split("?")[0]
            proxy.seen.append(path)
            rule = proxy.rules.get(path)
            if rule is not None and rule.times > 0:
                rule.times -= 1
                headers = {"Content-Type": "application/json"}
                if rule.retry_after is not None:
                    headers["Retry-After"] = rule.retry_after
                msg = {"code": rule.status, "info": None, "msg": f"proxy says {rule.status}"}
                self._reply(rule.status, headers, json.dumps(msg).encode())
                return
            forwarded = {k: v for k, v in self.headers.items()
                         if k.lower() not in ("host", "content-length")}
            answer = httpx.request(self.command, proxy.upstream + self.path, content=body,
                                   headers=forwarded, timeout=120)
            keep = {k: v for k, v in answer.headers.items()
                    if k.lower() in ("content-type", "retry-after")}
            self._reply(answer.status_code, keep, answer.content)

        do_GET = do_POST = _handle

    return Handler


@pytest.fixture(scope="module")
def upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    # Two failed logins lock an email (and the client's address) out: see the last test.
    with ronghe_server(tmp_path_factory.mktemp("busy"), None,
                       ("carol@example.com",), RONGHE_LOGIN_MAX_FAILURES="2") as running:
        yield running


@pytest.fixture(scope="module")
def token(upstream: Server) -> str:
    with Client(upstream.url) as client:
        return client.login("carol@example.com", PASSWORD).token


@pytest.fixture
def proxy(upstream: Server) -> Iterator[Proxy]:
    state = Proxy(upstream.url)
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    state.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield state
    httpd.shutdown()
    httpd.server_close()


def test_busy_answers_are_retried_until_the_server_answers(proxy: Proxy, token: str) -> None:
    proxy.rules["/api/v1b/models/base"] = Rule(times=2, status=503)
    proxy.rules["/api/v1b/task_list"] = Rule(times=3, status=429, retry_after=None)
    with Client(proxy.url, token=token, policy=FAST) as client:
        assert client.models("base").models  # the real server's answer, third try
        assert client.tasks().total == 0  # fourth try: 1 + max_retries
    assert proxy.count("/api/v1b/models/base") == 3
    assert proxy.count("/api/v1b/task_list") == 4


def test_retries_stop_at_the_limit_with_the_servers_message(proxy: Proxy, token: str) -> None:
    proxy.rules["/api/v1b/task_list"] = Rule(times=100, status=503, retry_after="7")
    with Client(proxy.url, token=token, policy=FAST) as client, \
            pytest.raises(BusyError) as caught:
        client.tasks()
    assert type(caught.value) is BusyError and caught.value.retry_after == 7
    assert caught.value.msg == "proxy says 503" and caught.value.status == 503
    assert proxy.count("/api/v1b/task_list") == 1 + FAST.max_retries
    proxy.rules["/api/v1b/task_result"] = Rule(times=100, status=429)
    with Client(proxy.url, token=token, policy=Policy(max_retries=0)) as client, \
            pytest.raises(RateLimitedError):
        client.result("x")
    assert proxy.count("/api/v1b/task_result") == 1


def test_a_stream_is_retried_before_it_begins(proxy: Proxy, token: str) -> None:
    proxy.rules["/v1/nlp/chat/completions"] = Rule(times=1, status=503)
    with Client(proxy.url, token=token, policy=FAST) as client:
        assert "".join(client.chat("Hi", stream=True, max_new_tokens=4))
    assert proxy.count("/v1/nlp/chat/completions") == 2


def test_the_cli_reports_a_busy_server(proxy: Proxy, token: str) -> None:
    proxy.rules["/api/v1b/task_list"] = Rule(times=100, status=503)
    result = CliRunner().invoke(app, ["tasks"], env={"RONGHE_URL": proxy.url,
                                                     "RONGHE_TOKEN": token})
    assert result.exit_code == 1 and "proxy says 503" in result.stderr
    assert proxy.count("/api/v1b/task_list") == 5  # the CLI's client retries 4 times


def test_login_lockout_is_not_retried(proxy: Proxy) -> None:
    with Client(proxy.url) as client:
        for _ in range(2):
            with pytest.raises(Exception, match="email or password is incorrect"):
                client.login("carol@example.com", "wrong")
        with pytest.raises(RateLimitedError) as caught:
            client.login("carol@example.com", PASSWORD)
    # Retry-After is the lockout's own wait (login_lockout_seconds, 30 s by default).
    assert "too many failed logins" in caught.value.msg and caught.value.retry_after == 30
    assert "try again in 30 seconds" in caught.value.msg
    assert proxy.count("/api/v1b/get_token") == 3  # a lockout lasts minutes: no retries
