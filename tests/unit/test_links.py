"""Delivered links (duratask/links.py): signing, tampering, expiry, who gets one; the
decision page's form reading (api/link_page.py); single use in the store, on SQLite and
PostgreSQL (duratask/store/links.py)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import SecretStr
from temporalio.exceptions import ApplicationError

from activities import delivery
from api import link_page
from duratask import links
from duratask.settings import Settings
from duratask.store.db import create_engine, migrate
from duratask.store.links import UsedLinks
from workflows.models import Delivery, NotifyRequest

NOW = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)


def settings(**kw: object) -> Settings:
    base: dict[str, object] = {"delivery_link_key": SecretStr("k" * 32),
                               "public_url": "https://duratask.example.com/"}  # fmt: skip
    return Settings(_env_file=None, **{**base, **kw})  # type: ignore[call-arg,arg-type]


def new_link(s: Settings, who: str = "ann@example.com", groups: tuple[str, ...] = ()) -> str:
    _, url = links.make(s, links.Recipient(who, groups), "run-1", "review", "approval",
                        NOW.isoformat(), NOW + timedelta(hours=1))  # fmt: skip
    assert url.startswith("https://duratask.example.com/v1/links/")
    return url.rsplit("/", 1)[1]


def test_a_link_reads_back_what_it_was_made_for() -> None:
    s = settings()
    link = links.read(s, new_link(s, groups=("leads",)), now=NOW)
    assert (link.recipient, link.groups, link.run_id, link.step_id, link.kind, link.visit) == (
        "ann@example.com",
        ("leads",),
        "run-1",
        "review",
        "approval",
        NOW.isoformat(),
    )
    assert link.expires_at == NOW + timedelta(hours=1)
    assert links.read(s, new_link(s), now=NOW).id != link.id  # every link is its own


@pytest.mark.parametrize(
    "change",
    [
        lambda t: t[:-2] + ("AA" if not t.endswith("AA") else "BB"),  # the signature
        lambda t: t.replace(t.rsplit(".", 1)[0], t.rsplit(".", 1)[0][:-3] + "abc"),  # content
        lambda t: "x" + t,
        lambda t: "",
    ],
)
def test_a_changed_link_is_refused(change: object) -> None:
    s = settings()
    with pytest.raises(links.LinkError) as e:
        links.read(s, change(new_link(s)), now=NOW)  # type: ignore[operator]
    assert e.value.status == 403 and "not valid" in e.value.detail


def test_a_link_made_with_another_key_or_read_without_one_is_refused() -> None:
    token = new_link(settings(delivery_link_key=SecretStr("another")))
    with pytest.raises(links.LinkError) as e:
        links.read(settings(), token, now=NOW)
    assert e.value.status == 403
    with pytest.raises(links.LinkError) as e:
        links.read(settings(delivery_link_key=None), token, now=NOW)
    assert e.value.status == 404 and "links are off" in e.value.detail


def test_an_expired_link_is_gone() -> None:
    s = settings()
    token = new_link(s)
    links.read(s, token, now=NOW + timedelta(minutes=59))
    with pytest.raises(links.LinkError) as e:
        links.read(s, token, now=NOW + timedelta(hours=1))
    assert e.value.status == 410 and "expired" in e.value.detail


def test_a_link_never_outlives_its_request() -> None:
    s = settings(delivery_link_ttl="24h")
    assert links.expiry(s, NOW, None) == NOW + timedelta(hours=24)
    assert links.expiry(s, NOW, NOW + timedelta(hours=2)) == NOW + timedelta(hours=2)
    assert links.expiry(settings(delivery_link_ttl="30m"), NOW, NOW + timedelta(hours=2)) == (
        NOW + timedelta(minutes=30))  # fmt: skip


def test_recipients_are_identities_and_mapped_group_members_each_once() -> None:
    s = settings(delivery_groups={"Leads": ["lee@example.com", "Ann@example.com"], "ops": []})
    people = links.recipients(
        s, ["ann@example.com", "group:leads", "group:nobody", "group:ops", "local", "bob@x.io"],
        skip=["BOB@x.io"],
    )  # fmt: skip
    assert [(p.identity, p.groups) for p in people] == [
        ("ann@example.com", ("leads",)), ("lee@example.com", ("leads",)), ("local", ())]  # fmt: skip
    assert [p.email for p in people] == ["ann@example.com", "lee@example.com", None]


def test_the_activity_gives_every_recipient_a_link_only_with_a_key() -> None:
    req = NotifyRequest(
        run_id="run-1", step_id="review", message="m", idempotency_key="k",
        delivery=Delivery(kind="approval", visit=NOW.isoformat(),
                          recipients=["ann@example.com", "local"]),
    )  # fmt: skip
    addressed = delivery.address(settings(), req)
    assert [a.recipient.identity for a in addressed] == ["ann@example.com", "local"]
    assert all(a.url and a.url.startswith("https://duratask.example.com/v1/links/")
               for a in addressed)  # fmt: skip
    hook = delivery.webhook_links(addressed)
    assert [h["recipient"] for h in hook] == ["ann@example.com", "local"]
    plain = delivery.address(settings(delivery_link_key=None), req)
    assert [a.url for a in plain] == [None, None]
    past = req.model_copy(update={"delivery": req.delivery.model_copy(  # type: ignore[union-attr]
        update={"deadline": datetime.now(UTC) - timedelta(seconds=1)})})  # fmt: skip
    assert [a.url for a in delivery.address(settings(), past)] == [None, None]


def test_the_page_form_is_read_by_the_schema() -> None:
    schema = {
        "type": "object",
        "properties": {
            "account": {"type": "string"},
            "amount": {"type": "number"},
            "n": {"type": "integer"},
            "ok": {"type": "boolean", "default": True},
            "colour": {"enum": ["red", 2]},
        },
        "required": ["account"],
    }
    fields = link_page.form_fields(schema)
    assert fields is not None
    assert [(f["name"], f["options"]) for f in fields][3:] == [
        ("ok", ["true", "false"]), ("colour", ["red", "2"])]  # fmt: skip
    value, problems = link_page.value_from_form(
        schema, {"field.account": "", "field.amount": "4.5", "field.n": "", "field.ok": "false",
                 "field.colour": "2"},
    )  # fmt: skip
    assert problems == [] and value == {"account": "", "amount": 4.5, "ok": False, "colour": 2}
    _, problems = link_page.value_from_form(schema, {"field.n": "1.5", "field.amount": "nan"})
    assert sorted(p["field"] for p in problems) == ["amount", "n"]
    assert link_page.form_fields({"type": "array"}) is None
    value, problems = link_page.value_from_form({"type": "array"}, {"value": "[1, 2]"})
    assert value == [1, 2] and problems == []
    _, problems = link_page.value_from_form({"type": "array"}, {"value": "[1,"})
    assert problems[0]["field"] == "value"


def test_the_page_escapes_what_it_shows() -> None:
    page = link_page.render(
        title="Approval requested", kind="approval", run_id="run-1",
        definition="d", step_id="s", recipient="a", expires_at="soon",
        prompt="<script>alert(1)</script>", approvers="a", approvals=0, min_approvals=1,
    )  # fmt: skip
    assert "<script>" not in page and "&lt;script&gt;" in page and "expires at soon." in page
    assert link_page.when("2026-11-30T08:48:52.1+01:00") == "2026-11-30 07:48 UTC"


@pytest.fixture
async def used(db_url: str) -> AsyncIterator[UsedLinks]:
    engine = create_engine(db_url)
    await migrate(engine)
    yield UsedLinks(engine)
    await engine.dispose()


async def test_a_link_is_claimed_once_even_when_raced(used: UsedLinks) -> None:
    s = settings()
    link = links.read(s, new_link(s), now=NOW)
    link = links.Link(**{**link.__dict__, "expires_at": datetime.now(UTC) + timedelta(hours=1)})
    assert not await used.used(link.id)
    won = await asyncio.gather(*(used.claim(link) for _ in range(5)))
    assert sorted(won) == [False, False, False, False, True]
    assert await used.used(link.id)
    await used.release(link.id)  # the run refused the decision: the link may try again
    assert await used.claim(link) and not await used.claim(link)
    # expired claims are forgotten (such links are refused as expired anyway)
    assert await used.prune(datetime.now(UTC) + timedelta(hours=2)) == 1
    assert await used.count() == 0


async def test_the_smtp_password_is_never_sent_unencrypted() -> None:
    req = NotifyRequest(
        run_id="run-1", step_id="review", message="m", idempotency_key="k",
        delivery=Delivery(kind="approval", visit=NOW.isoformat(), recipients=["a@example.com"]),
    )  # fmt: skip
    s = settings(smtp_host="smtp.example.com", smtp_starttls=False, smtp_username="u",
                 smtp_password=SecretStr("hunter2"))  # fmt: skip
    with pytest.raises(ApplicationError) as e:
        await delivery.send_mail(s, req, delivery.address(s, req))
    assert e.value.non_retryable and "unencrypted" in e.value.message
    assert "hunter2" not in str(e.value)
    # nobody to mail, or no server: nothing is sent and nothing fails
    assert await delivery.send_mail(settings(), req, delivery.address(s, req)) == 0
