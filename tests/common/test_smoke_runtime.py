from sqlalchemy import text


async def test_session_database_has_every_schema(session):
    rows = await session.execute(text("SELECT schema_name FROM information_schema.schemata"))
    schemas = {r[0] for r in rows}
    assert {"profile", "segment", "recommend", "notify", "loyalty"} <= schemas


async def test_nats_jetstream_answers(nats_client):
    info = await nats_client.jetstream().account_info()
    assert info.limits is not None
