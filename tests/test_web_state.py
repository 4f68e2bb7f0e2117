"""The live view's pieces that need no network: --web's address, the frozen page's embedding."""

from __future__ import annotations

import json
import re

import pytest

from pyctl.errors import ConfigError, ICPNError
from pyctl.web.server import LiveView, page, parse_addr
from pyctl.web.state import embed, jsonable


def test_parse_addr() -> None:
    assert parse_addr("127.0.0.1:8080") == ("127.0.0.1", 8080)
    assert parse_addr(":0") == ("127.0.0.1", 0)
    assert parse_addr("9000") == ("127.0.0.1", 9000)
    assert parse_addr("[::1]:8080") == ("::1", 8080)
    with pytest.raises(ConfigError, match=r"--web.*'host:http'"):
        parse_addr("host:http")
    with pytest.raises(ConfigError, match="--web"):
        parse_addr("1.2.3.4:70000")


def test_a_taken_port_is_refused_before_the_run() -> None:
    first = LiveView("127.0.0.1:0", say=lambda _: None)
    assert first.server is not None
    try:
        with pytest.raises(ICPNError, match="cannot bind"):
            LiveView(f"127.0.0.1:{first.server.port}", say=lambda _: None)
    finally:
        first.close()


def test_embedded_state_cannot_end_the_script() -> None:
    # a node name with "</script>" in it must stay inside the JSON, not close the element
    state = {"name": "</script><b>x", "nodes": []}
    html = embed(page(), state)
    assert html.count("</script>") == page().count("</script>")
    m = re.search(r"const FROZEN = (.*);\n", html)
    assert m is not None and json.loads(m.group(1).replace("<\\/", "</")) == state


def test_jsonable_decisions() -> None:
    from dataclasses import dataclass

    @dataclass
    class Decision:
        flow: str
        site: str
        paths: tuple[str, ...]

    got = jsonable([Decision("f", "dc1", ("p1", "p2")), {"k": object}])
    assert got[0] == {"flow": "f", "site": "dc1", "paths": ["p1", "p2"]}
    assert got[1]["k"].startswith("<class")
