"""The portal's SQL store (SQLite or PostgreSQL, through the CA's database adapter): the
sessions of verified addresses with their draft, the files attached to a draft, and the
submissions with their files. A submission and its files are written in one transaction,
keyed by the confirm page's idempotency key: a second submit of the same page finds the
first one instead of making another."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from ca_service.adapters.sql.database import Cursor, Database, IntegrityError
from ca_service.adapters.sql.migrations import Migration, migrate
from gateway.portal.card import Card
from gateway.portal.errors import StaleConfirmation
from gateway.portal.procedure import RECEIPT_SERIAL_DIGITS, check_files, make_receipt_number

__all__ = [
    "PortalSession",
    "PortalStore",
    "StagedFile",
    "Submission",
    "session_key",
]

MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "portal",
        (
            """
            CREATE TABLE portal_sessions (
                key_hash TEXT PRIMARY KEY,
                address TEXT NOT NULL,
                csrf TEXT NOT NULL,
                card_fingerprint TEXT,
                identity_confirmed INTEGER NOT NULL DEFAULT 0,
                member_number TEXT NOT NULL DEFAULT '',
                original_receipt TEXT NOT NULL DEFAULT '',
                submit_token TEXT,
                created_at BIGINT NOT NULL,
                expires_at BIGINT NOT NULL
            )
            """,
            """
            CREATE TABLE portal_staged_files (
                id {serial_pk},
                session_hash TEXT NOT NULL,
                name TEXT NOT NULL,
                content_type TEXT NOT NULL,
                size BIGINT NOT NULL,
                sha256 TEXT NOT NULL,
                path TEXT NOT NULL,
                uploaded_at BIGINT NOT NULL
            )
            """,
            "CREATE INDEX portal_staged_by_session ON portal_staged_files (session_hash, id)",
            """
            CREATE TABLE portal_submissions (
                receipt_number TEXT PRIMARY KEY,
                idempotency_key TEXT NOT NULL UNIQUE,
                address TEXT NOT NULL,
                card_fingerprint TEXT NOT NULL,
                card_name TEXT NOT NULL,
                card_address TEXT NOT NULL,
                card_birth_date TEXT NOT NULL,
                card_sex TEXT NOT NULL,
                member_number TEXT NOT NULL,
                original_receipt TEXT NOT NULL,
                submitted_at BIGINT NOT NULL,
                mail_sent_at BIGINT
            )
            """,
            "CREATE INDEX portal_submissions_unmailed ON portal_submissions (mail_sent_at)",
            """
            CREATE TABLE portal_registrations (
                address TEXT NOT NULL,
                requested_at BIGINT NOT NULL
            )
            """,
            "CREATE INDEX portal_registrations_by_address ON portal_registrations"
            " (address, requested_at)",
            """
            CREATE TABLE portal_submission_files (
                receipt_number TEXT NOT NULL REFERENCES portal_submissions (receipt_number),
                ordinal INTEGER NOT NULL,
                name TEXT NOT NULL,
                content_type TEXT NOT NULL,
                size BIGINT NOT NULL,
                sha256 TEXT NOT NULL,
                path TEXT NOT NULL,
                PRIMARY KEY (receipt_number, ordinal)
            )
            """,
        ),
    ),
)

# Receipt numbers drawn again when the one drawn exists already (same second, same serial).
_RECEIPT_DRAWS = 20


def session_key() -> str:
    """A new session cookie value (the store keeps only its hash)."""
    return secrets.token_urlsafe(32)


def _hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def _seconds(instant: datetime) -> int:
    return int(instant.timestamp())


def _instant(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


@dataclass(frozen=True, slots=True)
class PortalSession:
    key_hash: str
    address: str
    csrf: str
    card_fingerprint: str | None
    identity_confirmed: bool
    member_number: str
    original_receipt: str
    submit_token: str | None
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class StagedFile:
    id: int
    name: str
    content_type: str
    size: int
    sha256: str
    path: str


@dataclass(frozen=True, slots=True)
class Submission:
    receipt_number: str
    address: str
    card_fingerprint: str
    member_number: str
    original_receipt: str
    submitted_at: datetime
    files: tuple[StagedFile, ...]


_SESSION_COLUMNS = (
    "key_hash, address, csrf, card_fingerprint, identity_confirmed, member_number,"
    " original_receipt, submit_token, expires_at"
)


def _session(row: tuple[object, ...]) -> PortalSession:
    return PortalSession(
        key_hash=str(row[0]),
        address=str(row[1]),
        csrf=str(row[2]),
        card_fingerprint=None if row[3] is None else str(row[3]),
        identity_confirmed=bool(row[4]),
        member_number=str(row[5]),
        original_receipt=str(row[6]),
        submit_token=None if row[7] is None else str(row[7]),
        expires_at=_instant(int(str(row[8]))),
    )


def _file(row: tuple[object, ...]) -> StagedFile:
    return StagedFile(
        id=int(str(row[0])),
        name=str(row[1]),
        content_type=str(row[2]),
        size=int(str(row[3])),
        sha256=str(row[4]),
        path=str(row[5]),
    )


class PortalStore:
    def __init__(self, database: Database) -> None:
        self._database = database

    def migrate(self) -> None:
        migrate(self._database, MIGRATIONS)

    def close(self) -> None:
        self._database.close()

    async def ping(self) -> None:
        """A trivial read (the health check); StoreError when the database does not answer."""
        await self._database.ping()

    # -- registration requests ------------------------------------------------------------

    async def admit_registration(
        self, address: str, now: datetime, window: timedelta, most: int
    ) -> bool:
        """Counts a request for a registration link to ``address``; False (nothing counted)
        when ``most`` were made within ``window`` already: a stranger cannot flood
        someone's mailbox through the portal."""
        at, since = _seconds(now), _seconds(now - window)

        def work(cursor: Cursor) -> bool:
            cursor.execute(
                "DELETE FROM portal_registrations WHERE address = ? AND requested_at <= ?",
                (address, since),
            )
            row = cursor.execute(
                "SELECT COUNT(*) FROM portal_registrations WHERE address = ?", (address,)
            ).fetchone()
            if row is not None and int(row[0]) >= most:
                return False
            cursor.execute(
                "INSERT INTO portal_registrations (address, requested_at) VALUES (?, ?)",
                (address, at),
            )
            return True

        return await self._database.write(work)

    # -- sessions -------------------------------------------------------------------------

    async def create_session(
        self, address: str, now: datetime, lifetime: timedelta
    ) -> tuple[str, PortalSession]:
        """A session for an address whose link was just opened; returns the cookie value."""
        key = session_key()
        key_hash, csrf = _hash(key), secrets.token_urlsafe(24)
        created, expires = _seconds(now), _seconds(now + lifetime)

        def work(cursor: Cursor) -> None:
            cursor.execute(
                "INSERT INTO portal_sessions (key_hash, address, csrf, created_at, expires_at)"
                " VALUES (?, ?, ?, ?, ?)",
                (key_hash, address, csrf, created, expires),
            )

        await self._database.write(work)
        return key, PortalSession(
            key_hash, address, csrf, None, False, "", "", None, _instant(expires)
        )

    async def session(self, key: str, now: datetime) -> PortalSession | None:
        """The live session a cookie value names."""
        return await self.session_by_hash(_hash(key), now)

    async def session_by_hash(self, key_hash: str, now: datetime) -> PortalSession | None:
        at = _seconds(now)

        def read(cursor: Cursor) -> tuple[object, ...] | None:
            return cursor.execute(
                f"SELECT {_SESSION_COLUMNS} FROM portal_sessions"
                " WHERE key_hash = ? AND expires_at > ?",
                (key_hash, at),
            ).fetchone()

        row = await self._database.read(read)
        return None if row is None else _session(row)

    async def bind_card(self, session: PortalSession, fingerprint: str) -> bool:
        """Binds the session to the first card certificate seen with it; False when it is
        bound to another one already."""

        def work(cursor: Cursor) -> bool:
            cursor.execute(
                "UPDATE portal_sessions SET card_fingerprint = ?"
                " WHERE key_hash = ? AND card_fingerprint IS NULL",
                (fingerprint, session.key_hash),
            )
            row = cursor.execute(
                "SELECT card_fingerprint FROM portal_sessions WHERE key_hash = ?",
                (session.key_hash,),
            ).fetchone()
            return row is not None and row[0] == fingerprint

        return await self._database.write(work)

    async def confirm_identity(self, session: PortalSession) -> None:
        await self._update(session, "identity_confirmed = 1", ())

    async def save_draft(
        self, session: PortalSession, member_number: str, original_receipt: str
    ) -> None:
        """The typed fields; a changed draft needs a new confirm page (its token is void)."""
        await self._update(
            session,
            "member_number = ?, original_receipt = ?, submit_token = NULL",
            (member_number, original_receipt),
        )

    async def freeze_draft(self, session: PortalSession) -> str:
        """The draft passed its checks: a new idempotency key for the confirm page."""
        token = secrets.token_urlsafe(24)
        await self._update(session, "submit_token = ?", (token,))
        return token

    async def end_session(self, session: PortalSession) -> None:
        def work(cursor: Cursor) -> None:
            cursor.execute("DELETE FROM portal_sessions WHERE key_hash = ?", (session.key_hash,))

        await self._database.write(work)

    async def _update(
        self, session: PortalSession, assignments: str, values: tuple[object, ...]
    ) -> None:
        def work(cursor: Cursor) -> None:
            cursor.execute(
                f"UPDATE portal_sessions SET {assignments} WHERE key_hash = ?",
                (*values, session.key_hash),
            )

        await self._database.write(work)

    # -- attached files -------------------------------------------------------------------

    async def staged_files(self, session: PortalSession) -> list[StagedFile]:
        def read(cursor: Cursor) -> list[tuple[object, ...]]:
            return cursor.execute(
                "SELECT id, name, content_type, size, sha256, path FROM portal_staged_files"
                " WHERE session_hash = ? ORDER BY id",
                (session.key_hash,),
            ).fetchall()

        return [_file(row) for row in await self._database.read(read)]

    async def stage_files(
        self,
        session: PortalSession,
        files: list[tuple[str, str, int, str, str]],
        now: datetime,
        admit: Callable[[list[int]], None],
    ) -> None:
        """Attaches (name, content type, size, sha256, path) files to the draft, all or
        none; ``admit`` sees every size the draft would then hold and raises to refuse
        (another request of the session may have attached files meanwhile)."""
        at = _seconds(now)

        def work(cursor: Cursor) -> None:
            rows = cursor.execute(
                "SELECT size FROM portal_staged_files WHERE session_hash = ?",
                (session.key_hash,),
            ).fetchall()
            admit([int(row[0]) for row in rows] + [file[2] for file in files])
            cursor.executemany(
                "INSERT INTO portal_staged_files"
                " (session_hash, name, content_type, size, sha256, path, uploaded_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                [(session.key_hash, *file, at) for file in files],
            )
            cursor.execute(
                "UPDATE portal_sessions SET submit_token = NULL WHERE key_hash = ?",
                (session.key_hash,),
            )

        await self._database.write(work)

    async def remove_file(self, session: PortalSession, file_id: int) -> str | None:
        """Detaches a file of this session's draft; its path (to delete), None if unknown."""

        def work(cursor: Cursor) -> str | None:
            row = cursor.execute(
                "SELECT path FROM portal_staged_files WHERE id = ? AND session_hash = ?",
                (file_id, session.key_hash),
            ).fetchone()
            if row is None:
                return None
            cursor.execute("DELETE FROM portal_staged_files WHERE id = ?", (file_id,))
            cursor.execute(
                "UPDATE portal_sessions SET submit_token = NULL WHERE key_hash = ?",
                (session.key_hash,),
            )
            return str(row[0])

        return await self._database.write(work)

    # -- submissions ----------------------------------------------------------------------

    async def submit(
        self, session: PortalSession, token: str, card: Card, now: datetime
    ) -> tuple[str, bool]:
        """Turns the frozen draft into a submission with a new receipt number, in one
        transaction; (receipt number, True). The same confirm page submitted again (double
        click, reload, a second process racing) answers the first one's (receipt, False).
        :class:`StaleConfirmation` when ``token`` is not the draft's current key."""
        submitted = _seconds(now)

        def work(cursor: Cursor) -> tuple[str, bool]:
            done = cursor.execute(
                "SELECT receipt_number FROM portal_submissions WHERE idempotency_key = ?",
                (token,),
            ).fetchone()
            if done is not None:
                return str(done[0]), False
            row = cursor.execute(
                f"SELECT {_SESSION_COLUMNS} FROM portal_sessions WHERE key_hash = ?",
                (session.key_hash,),
            ).fetchone()
            current = None if row is None else _session(row)
            if current is None or current.submit_token != token:
                raise StaleConfirmation("the confirm page is not the draft's latest")
            files = [
                _file(r)
                for r in cursor.execute(
                    "SELECT id, name, content_type, size, sha256, path"
                    " FROM portal_staged_files WHERE session_hash = ? ORDER BY id",
                    (session.key_hash,),
                ).fetchall()
            ]
            check_files([f.size for f in files])
            receipt = _new_receipt(cursor, now)
            cursor.execute(
                "INSERT INTO portal_submissions (receipt_number, idempotency_key, address,"
                " card_fingerprint, card_name, card_address, card_birth_date, card_sex,"
                " member_number, original_receipt, submitted_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    receipt,
                    token,
                    current.address,
                    card.fingerprint,
                    card.name,
                    card.address,
                    card.birth_date,
                    card.sex,
                    current.member_number,
                    current.original_receipt,
                    submitted,
                ),
            )
            cursor.executemany(
                "INSERT INTO portal_submission_files (receipt_number, ordinal, name,"
                " content_type, size, sha256, path) VALUES (?, ?, ?, ?, ?, ?, ?)",
                [
                    (receipt, ordinal, f.name, f.content_type, f.size, f.sha256, f.path)
                    for ordinal, f in enumerate(files, 1)
                ],
            )
            cursor.execute(
                "DELETE FROM portal_staged_files WHERE session_hash = ?", (session.key_hash,)
            )
            cursor.execute(
                "UPDATE portal_sessions SET submit_token = NULL, member_number = '',"
                " original_receipt = '', identity_confirmed = 0 WHERE key_hash = ?",
                (session.key_hash,),
            )
            return receipt, True

        # Another process may take the same receipt number or key between our check and
        # our insert (PostgreSQL): the unique keys refuse it and the next run sees why.
        for attempt in range(3):
            try:
                return await self._database.write(work)
            except IntegrityError:
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    async def submission(self, receipt_number: str) -> Submission | None:
        def read(
            cursor: Cursor,
        ) -> tuple[tuple[object, ...] | None, list[tuple[object, ...]]]:
            row = cursor.execute(
                "SELECT receipt_number, address, card_fingerprint, member_number,"
                " original_receipt, submitted_at FROM portal_submissions"
                " WHERE receipt_number = ?",
                (receipt_number,),
            ).fetchone()
            files = cursor.execute(
                "SELECT ordinal, name, content_type, size, sha256, path"
                " FROM portal_submission_files WHERE receipt_number = ? ORDER BY ordinal",
                (receipt_number,),
            ).fetchall()
            return row, files

        row, files = await self._database.read(read)
        if row is None:
            return None
        return Submission(
            receipt_number=str(row[0]),
            address=str(row[1]),
            card_fingerprint=str(row[2]),
            member_number=str(row[3]),
            original_receipt=str(row[4]),
            submitted_at=_instant(int(str(row[5]))),
            files=tuple(_file(f) for f in files),
        )

    async def unmailed(self, limit: int = 50) -> list[tuple[str, str, datetime]]:
        """Submissions whose completion mail the CA has not accepted yet (oldest first)."""

        def read(cursor: Cursor) -> list[tuple[object, ...]]:
            return cursor.execute(
                "SELECT receipt_number, address, submitted_at FROM portal_submissions"
                " WHERE mail_sent_at IS NULL ORDER BY submitted_at LIMIT ?",
                (limit,),
            ).fetchall()

        return [
            (str(r[0]), str(r[1]), _instant(int(str(r[2]))))
            for r in await self._database.read(read)
        ]

    async def mark_mailed(self, receipt_number: str, now: datetime) -> None:
        def work(cursor: Cursor) -> None:
            cursor.execute(
                "UPDATE portal_submissions SET mail_sent_at = ? WHERE receipt_number = ?",
                (_seconds(now), receipt_number),
            )

        await self._database.write(work)

    async def referenced_paths(self) -> set[str]:
        """Every stored file a draft or a submission names."""
        return await self._database.read(_referenced)

    async def expired_sessions(self, now: datetime) -> list[str]:
        """Deletes sessions past their end with their unsubmitted files; the files' paths."""
        at = _seconds(now)

        def work(cursor: Cursor) -> list[str]:
            paths = [
                str(row[0])
                for row in cursor.execute(
                    "SELECT f.path FROM portal_staged_files f JOIN portal_sessions s"
                    " ON s.key_hash = f.session_hash WHERE s.expires_at <= ?",
                    (at,),
                ).fetchall()
            ]
            cursor.execute(
                "DELETE FROM portal_staged_files WHERE session_hash IN"
                " (SELECT key_hash FROM portal_sessions WHERE expires_at <= ?)",
                (at,),
            )
            cursor.execute("DELETE FROM portal_sessions WHERE expires_at <= ?", (at,))
            return paths

        return await self._database.write(work)


def _referenced(cursor: Cursor) -> set[str]:
    return {
        str(row[0])
        for table in ("portal_staged_files", "portal_submission_files")
        for row in cursor.execute(f"SELECT path FROM {table}").fetchall()
    }


def _new_receipt(cursor: Cursor, now: datetime) -> str:
    for _ in range(_RECEIPT_DRAWS):
        receipt = make_receipt_number(now, secrets.randbelow(10**RECEIPT_SERIAL_DIGITS))
        taken = cursor.execute(
            "SELECT 1 FROM portal_submissions WHERE receipt_number = ?", (receipt,)
        ).fetchone()
        if taken is None:
            return receipt
    raise IntegrityError("no free receipt number this second")
