"""Password reset end to end: the request over HTTP, the mail through a real SMTP server on
loopback (smtplib to aiosmtpd), the link from that mail, the new password."""

from __future__ import annotations

import re

from tests.sims.smtp import SmtpSim
from tests.web.conftest import ApiFactory

from tradeguard.auth.accounts import Role


def test_a_reset_mail_arrives_and_its_link_sets_the_password_once(
    api_factory: ApiFactory,
) -> None:
    with SmtpSim() as smtp, api_factory(
        smtp_host=smtp.host, smtp_port=smtp.port, smtp_security="none",
        mail_from="tradeguard@example.com",
    ) as api:  # fmt: skip
        user = api.make_user(Role.TRADER)
        for address in ("nobody@example.com", user.email.upper()):
            answer = api.client.post("/api/auth/reset/request", json={"email": address})
            assert answer.status_code == 202
        api.ctx.accounts.wait_for_mail()
        assert [m.rcpt_tos for m in smtp.messages] == [[user.email]]  # none for nobody@
        mail = smtp.messages[0].message
        assert mail["From"] == "tradeguard@example.com"
        body = mail.get_content()
        match = re.search(r"https://trade\.example\.test/reset#token=([\w-]+)", body)
        assert match, body
        assert user.password not in body
        new = "a brand new passphrase from the mail 4"
        confirm = {"token": match.group(1), "password": new}
        assert api.client.post("/api/auth/reset/confirm", json=confirm).status_code == 200
        again = api.client.post("/api/auth/reset/confirm", json={**confirm, "password": new + "!"})
        assert again.status_code == 401  # the link works once
        login = {"login": user.name, "password": new}
        assert api.client.post("/api/auth/login", json=login).status_code == 200
