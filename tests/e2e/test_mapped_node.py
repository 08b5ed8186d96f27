"""A node serving an agency's own PostgreSQL table in place, through a column mapping."""

from __future__ import annotations

import uuid
from dataclasses import replace
from pathlib import Path

import psycopg

from comity.nodes.schema import SelectorType
from comity.sdk.demo.run import run_scenario, running_federation, scenarios
from comity.sdk.demo.setup import build_demo_federation
from comity.sdk.profile import load_profile


async def test_fbi_queries_a_canadian_agency_table_served_in_place(tmp_path: Path, postgres_url: str) -> None:
    fed = build_demo_federation(tmp_path / "fed", people=10, seed=5)
    fetch = next(s for s in scenarios(fed) if s.title.startswith("FBI fetches"))
    email = fetch.person.selectors[SelectorType.EMAIL]
    schema = f"agency_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(postgres_url, autocommit=True) as db:
        db.execute(f"CREATE SCHEMA {schema}")
        db.execute(
            f"CREATE TABLE {schema}.subscribers (id text PRIMARY KEY, mail text, holder text, "
            "opened timestamptz, nationality text, residence text)"
        )
        db.execute(f"CREATE INDEX ON {schema}.subscribers (mail)")
        db.execute(
            f"INSERT INTO {schema}.subscribers VALUES"
            " (%s, %s, 'Mapped Holder', '2024-05-01T00:00:00Z', 'US', 'US'),"
            " ('other', 'someone@example.org', 'Else', '2024-05-01T00:00:00Z', 'CA', 'CA')",
            ("acc-1", email),
        )
    config = fed.node_configs["ca-node"]
    text = config.read_text().replace(
        'url = "sqlite:///../data/ca-node.db"',
        f'url = "{postgres_url}"\n\n[[store.tables]]\ntable = "{schema}.subscribers"\n'
        'record_type = "subscriber_account"\nrecord_id = "id"\nobserved_at = "opened"\n'
        'fields = { email = "mail", full_name = "holder", subject_nationality = "nationality", '
        'subject_residence = "residence" }',
    )
    config.write_text(text)
    try:
        subscriber_only = replace(fetch, categories=("SUBSCRIBER",))
        async with running_federation(fed), load_profile(fed.profiles["us.fbi"]).async_client() as client:
            outcome = await run_scenario(client, fed, subscriber_only)
        assert outcome.result is not None, outcome.error
        assert [dict(r.fields).get("email") for r in outcome.result.records] == [email]
        assert outcome.result.records[0].fields["full_name"] == "Mapped Holder"
    finally:
        with psycopg.connect(postgres_url, autocommit=True) as db:
            db.execute(f"DROP SCHEMA {schema} CASCADE")
