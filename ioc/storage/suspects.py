"""The ingest_suspects table: how often each message (by fingerprint) crashed the pipeline."""

from __future__ import annotations

import asyncpg


async def load(conn: asyncpg.Connection, max_age_s: float) -> dict[bytes, int]:
    """Fingerprint -> crashes, for the suspects seen within ``max_age_s``; older ones go."""
    await conn.execute(
        "DELETE FROM ingest_suspects WHERE last_at < now() - make_interval(secs => $1)",
        max_age_s)
    rows = await conn.fetch("SELECT fingerprint, crashes FROM ingest_suspects")
    return {bytes(r["fingerprint"]): r["crashes"] for r in rows}


async def add_crash(conn: asyncpg.Connection, fingerprints: list[bytes]) -> None:
    """One more crash for each fingerprint (a message listed twice counts once)."""
    await conn.execute(
        "INSERT INTO ingest_suspects AS s (fingerprint, crashes) "
        "SELECT DISTINCT f, 1 FROM unnest($1::bytea[]) AS f "
        "ON CONFLICT (fingerprint) DO UPDATE SET crashes = s.crashes + 1, last_at = now()",
        fingerprints)


async def forget(conn: asyncpg.Connection, fingerprints: list[bytes]) -> None:
    """The messages went through after all: they are no longer suspects."""
    await conn.execute("DELETE FROM ingest_suspects WHERE fingerprint = ANY($1::bytea[])",
                       fingerprints)
