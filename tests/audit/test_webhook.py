"""Tree heads are POSTed to the configured webhook (a real HTTP server on loopback), and a
receiver that is down or failing never delays or fails an append."""

from __future__ import annotations

import json
import socket

from tests.audit.conftest import AuditStore
from tests.conftest import Capture
from tests.sims.webhook import webhook_sim

from tradeguard.audit import TreeHead
from tradeguard.audit.heads import WebhookPublisher
from tradeguard.core.events import EventName
from tradeguard.secrets import Secret

USED = EventName.VAULT_CREDENTIAL_USED


def test_every_tree_head_is_posted_signed(audit_store: AuditStore) -> None:
    store = audit_store
    with webhook_sim() as sim:
        log = store.log(WebhookPublisher(Secret(sim.url), store.keys), head_every=5)
        for i in range(12):
            log.append(USED, subject=f"credential:{i}")
        log.close()  # the final head (size 12), and the webhook drained
        posted = sim.wait_for(3)
    assert [r.path for r in posted] == ["/hooks/audit"] * 3
    assert {r.content_type for r in posted} == {"application/json"}
    heads = [TreeHead.from_json(json.loads(r.body)) for r in posted]
    assert [h.size for h in heads] == [5, 10, 12]
    assert all(h.signed_by(store.keys) for h in heads)
    lines = store.checkpoints.read_text().splitlines()
    assert [json.loads(line)["tree_size"] for line in lines] == [5, 10, 12]


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_receiver_that_is_down_costs_a_warning_not_an_append(
    audit_store: AuditStore, capture: Capture
) -> None:
    store = audit_store
    url = f"http://127.0.0.1:{_closed_port()}/hooks/audit"
    log = store.log(WebhookPublisher(Secret(url), store.keys, timeout=1.0), head_every=2)
    seqs = [log.append(USED) for _ in range(4)]
    log.close()
    assert seqs == [0, 1, 2, 3]
    assert "tree head 2 not published" in capture.text
    assert url not in capture.text  # the URL may carry a token: never logged


def test_a_failing_receiver_costs_a_warning_not_an_append(
    audit_store: AuditStore, capture: Capture
) -> None:
    store = audit_store
    with webhook_sim() as sim:
        sim.status = 500
        log = store.log(WebhookPublisher(Secret(sim.url), store.keys), head_every=2)
        seqs = [log.append(USED) for _ in range(4)]
        log.close()
        assert len(sim.wait_for(2)) == 2
    assert seqs == [0, 1, 2, 3]
    assert "not published (HTTPError)" in capture.text
