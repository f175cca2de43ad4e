"""Ordered schema migrations. Each runs once, in its own transaction, and is recorded.

Never edit a migration that has shipped: add a new one at the end.
"""

from __future__ import annotations

MIGRATIONS: list[tuple[str, str]] = [
    (
        "0001_incidents",
        """
        CREATE TABLE incidents (
            number INTEGER PRIMARY KEY AUTOINCREMENT,
            title TEXT NOT NULL,
            description TEXT NOT NULL DEFAULT '',
            severity TEXT NOT NULL,
            status TEXT NOT NULL,
            assignee TEXT,
            fields TEXT NOT NULL DEFAULT '{}',
            correlation_id TEXT NOT NULL UNIQUE,
            created_by TEXT NOT NULL,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL,
            mitigated_at TEXT,
            resolved_at TEXT,
            closed_at TEXT,
            reopened_at TEXT
        );
        CREATE INDEX incidents_status ON incidents(status);
        CREATE TABLE incident_services (
            number INTEGER NOT NULL REFERENCES incidents(number),
            position INTEGER NOT NULL,
            service TEXT NOT NULL,
            PRIMARY KEY (number, service)
        );
        CREATE INDEX incident_services_service ON incident_services(service);
        CREATE TABLE timeline (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            number INTEGER NOT NULL REFERENCES incidents(number),
            at TEXT NOT NULL,
            kind TEXT NOT NULL,
            text TEXT NOT NULL,
            actor TEXT NOT NULL,
            system TEXT NOT NULL,
            data TEXT NOT NULL DEFAULT '{}'
        );
        CREATE INDEX timeline_number ON timeline(number, id);
        """,
    ),
    (
        "0002_connectors_and_sync",
        """
        CREATE TABLE connectors (
            name TEXT PRIMARY KEY,
            type TEXT NOT NULL,
            settings TEXT NOT NULL,
            enabled INTEGER NOT NULL DEFAULT 1,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL
        );
        CREATE TABLE links (
            number INTEGER NOT NULL REFERENCES incidents(number),
            connector TEXT NOT NULL,
            service TEXT NOT NULL,
            remote_id TEXT NOT NULL,
            remote_number TEXT,
            remote_url TEXT,
            remote_status TEXT,
            updated_at TEXT NOT NULL,
            PRIMARY KEY (number, connector, service),
            UNIQUE (connector, remote_id)
        );
        -- One row per change to push, per outbound connector and service.
        -- status: pending -> delivering (claimed, lease_until) -> done | failed
        CREATE TABLE outbox (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            connector TEXT NOT NULL,
            number INTEGER NOT NULL REFERENCES incidents(number),
            service TEXT NOT NULL,
            action TEXT NOT NULL,
            payload TEXT NOT NULL DEFAULT '{}',
            status TEXT NOT NULL DEFAULT 'pending',
            attempts INTEGER NOT NULL DEFAULT 0,
            next_attempt_at TEXT NOT NULL,
            lease_until TEXT,
            last_error TEXT,
            created_at TEXT NOT NULL,
            done_at TEXT
        );
        CREATE INDEX outbox_open ON outbox(status, next_attempt_at);
        CREATE INDEX outbox_incident ON outbox(connector, number, id);
        -- Raw inbound events, stored before they are acknowledged, processed after.
        -- status: pending -> processing (claimed) -> done | quarantined
        CREATE TABLE inbox (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            connector TEXT NOT NULL,
            delivery_id TEXT NOT NULL,
            event_type TEXT NOT NULL DEFAULT '',
            body BLOB NOT NULL,
            received_at TEXT NOT NULL,
            status TEXT NOT NULL DEFAULT 'pending',
            attempts INTEGER NOT NULL DEFAULT 0,
            lease_until TEXT,
            error TEXT,
            processed_at TEXT,
            UNIQUE (connector, delivery_id)
        );
        CREATE INDEX inbox_open ON inbox(status, id);
        CREATE TABLE sync_cursors (
            connector TEXT PRIMARY KEY,
            cursor TEXT NOT NULL,
            updated_at TEXT NOT NULL
        );
        CREATE TABLE meta (
            key TEXT PRIMARY KEY,
            value TEXT NOT NULL
        );
        """,
    ),
    (
        "0003_remote_event_times",
        """
        -- When the last applied remote change happened (the remote's own time), so an older
        -- event never rolls a newer state back.
        ALTER TABLE links ADD COLUMN remote_updated_at TEXT;
        CREATE INDEX inbox_received ON inbox(connector, received_at);
        """,
    ),
    (
        "0004_calls_and_logs",
        """
        -- Every call a connector made to its remote system: the figures of `im metrics`,
        -- `im connector status` and `health` are computed from these rows.
        CREATE TABLE calls (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            connector TEXT NOT NULL,
            at TEXT NOT NULL,
            method TEXT NOT NULL,
            path TEXT NOT NULL,
            status INTEGER,
            duration_ms REAL NOT NULL,
            error TEXT,
            rate_limit INTEGER,
            rate_remaining INTEGER
        );
        CREATE INDEX calls_connector_at ON calls(connector, at);
        -- Structured logs of the CLI and `im serve` (`im logs`).
        CREATE TABLE logs (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            at TEXT NOT NULL,
            level TEXT NOT NULL,
            levelno INTEGER NOT NULL,
            component TEXT NOT NULL,
            connector TEXT,
            message TEXT NOT NULL,
            data TEXT NOT NULL DEFAULT '{}'
        );
        CREATE INDEX logs_at ON logs(at);
        """,
    ),
    (
        "0005_sla_breaches",
        """
        -- SLA timers are derived from the incident's own times (declared or reopened, then
        -- acknowledged, resolved); only the breaches are stored, so each is notified once.
        CREATE TABLE sla_breaches (
            number INTEGER NOT NULL REFERENCES incidents(number),
            kind TEXT NOT NULL,
            started_at TEXT NOT NULL,
            due_at TEXT NOT NULL,
            target_seconds REAL NOT NULL,
            severity TEXT NOT NULL,
            detected_at TEXT NOT NULL,
            PRIMARY KEY (number, kind, started_at)
        );
        """,
    ),
    (
        "0006_api_tokens",
        """
        -- Bearer tokens of the HTTP API, by name; only a hash of each is kept.
        CREATE TABLE api_tokens (
            name TEXT PRIMARY KEY,
            hash TEXT NOT NULL UNIQUE,
            read_only INTEGER NOT NULL,
            created_at TEXT NOT NULL
        );
        """,
    ),
    (
        "0007_services_any_case",
        """
        -- Service names are lower-cased where they enter im; incidents of earlier versions may
        -- hold other cases, so a filter by service compares lower(service), through this.
        CREATE INDEX incident_services_lower ON incident_services(lower(service));
        """,
    ),
    (
        "0008_outbox_retention",
        """
        -- Delivered changes are forgotten after `retention.outbox_days`: the hourly purge
        -- finds them by when they were delivered.
        CREATE INDEX outbox_done ON outbox(status, done_at);
        """,
    ),
    (
        "0009_sla_due",
        """
        -- An SLA check reads the timers overdue by status, severity and when the timer
        -- started (declared, or last reopened), not every open incident.
        CREATE INDEX incidents_sla_due
            ON incidents(status, severity, coalesce(reopened_at, created_at));
        """,
    ),
    (
        "0010_connector_figures",
        """
        -- `im metrics connector`, `im connector status` and /metrics read a connector's
        -- figures by these, not by every row it ever had: incidents linked (a count of
        -- distinct numbers, in index order), the last day's deliveries, and the rows still
        -- to deliver or failed.
        CREATE INDEX links_connector_number ON links(connector, number);
        CREATE INDEX outbox_connector_created ON outbox(connector, created_at);
        CREATE INDEX outbox_connector_status ON outbox(connector, status);
        -- its latest error (status): only rows that have one, newest first
        CREATE INDEX outbox_connector_errors
            ON outbox(connector, coalesce(done_at, next_attempt_at)) WHERE last_error IS NOT NULL;
        """,
    ),
    (
        "0011_incidents_created",
        """
        -- Reports read the incidents declared in a period, page by page in (created_at,
        -- number) order: an index range in that order (the number is the rowid every index
        -- ends with), not every incident ever declared and a sort.
        CREATE INDEX incidents_created ON incidents(created_at);
        """,
    ),
    (
        "0012_cost_follows_changes",
        """
        -- A poll reads the links whose remote incident im believes open, not every link the
        -- connector ever made (nearly all of them resolved long ago).
        CREATE INDEX links_open ON links(connector, number, service)
            WHERE remote_status IN ('open', 'acknowledged');

        -- /metrics, `im metrics connector` and `im connector status` cost the same whatever
        -- the history: the counts of whole tables are kept as rows change, by the triggers
        -- below (in the transaction of the change, whichever code makes it), and started
        -- here from the rows there are; the other figures read an index for their time
        -- range, or the newest entry of one.
        CREATE TABLE incident_counts (
            status TEXT NOT NULL,
            severity TEXT NOT NULL,
            n INTEGER NOT NULL,
            PRIMARY KEY (status, severity)
        ) WITHOUT ROWID;
        INSERT INTO incident_counts (status, severity, n)
            SELECT status, severity, count(*) FROM incidents GROUP BY status, severity;
        CREATE TRIGGER incident_counts_insert AFTER INSERT ON incidents BEGIN
            INSERT INTO incident_counts (status, severity, n) VALUES (NEW.status, NEW.severity, 1)
                ON CONFLICT (status, severity) DO UPDATE SET n = n + 1;
        END;
        CREATE TRIGGER incident_counts_update AFTER UPDATE OF status, severity ON incidents
            WHEN OLD.status IS NOT NEW.status OR OLD.severity IS NOT NEW.severity BEGIN
            UPDATE incident_counts SET n = n - 1
                WHERE status = OLD.status AND severity = OLD.severity;
            INSERT INTO incident_counts (status, severity, n) VALUES (NEW.status, NEW.severity, 1)
                ON CONFLICT (status, severity) DO UPDATE SET n = n + 1;
        END;
        CREATE TRIGGER incident_counts_delete AFTER DELETE ON incidents BEGIN
            UPDATE incident_counts SET n = n - 1
                WHERE status = OLD.status AND severity = OLD.severity;
        END;

        -- incidents linked to each connector (an incident with links for two services
        -- counts once): a link changes the count when it is its incident's first or last
        -- of that connector
        CREATE TABLE linked_incidents (
            connector TEXT PRIMARY KEY,
            n INTEGER NOT NULL
        ) WITHOUT ROWID;
        INSERT INTO linked_incidents (connector, n)
            SELECT connector, count(DISTINCT number) FROM links GROUP BY connector;
        CREATE TRIGGER linked_incidents_insert AFTER INSERT ON links
            WHEN NOT EXISTS (SELECT 1 FROM links WHERE number = NEW.number
                             AND connector = NEW.connector AND service <> NEW.service) BEGIN
            INSERT INTO linked_incidents (connector, n) VALUES (NEW.connector, 1)
                ON CONFLICT (connector) DO UPDATE SET n = n + 1;
        END;
        CREATE TRIGGER linked_incidents_update AFTER UPDATE OF number, connector ON links
            WHEN OLD.number IS NOT NEW.number OR OLD.connector IS NOT NEW.connector BEGIN
            UPDATE linked_incidents SET n = n - 1 WHERE connector = OLD.connector
                AND NOT EXISTS (SELECT 1 FROM links WHERE number = OLD.number
                                AND connector = OLD.connector);
            INSERT INTO linked_incidents (connector, n) SELECT NEW.connector, 1
                WHERE NOT EXISTS (SELECT 1 FROM links WHERE number = NEW.number
                                  AND connector = NEW.connector AND service <> NEW.service)
                ON CONFLICT (connector) DO UPDATE SET n = n + 1;
        END;
        CREATE TRIGGER linked_incidents_delete AFTER DELETE ON links
            WHEN NOT EXISTS (SELECT 1 FROM links WHERE number = OLD.number
                             AND connector = OLD.connector) BEGIN
            UPDATE linked_incidents SET n = n - 1 WHERE connector = OLD.connector;
        END;

        CREATE TABLE outbox_counts (
            connector TEXT NOT NULL,
            status TEXT NOT NULL,
            n INTEGER NOT NULL,
            PRIMARY KEY (connector, status)
        ) WITHOUT ROWID;
        INSERT INTO outbox_counts (connector, status, n)
            SELECT connector, status, count(*) FROM outbox GROUP BY connector, status;
        CREATE TRIGGER outbox_counts_insert AFTER INSERT ON outbox BEGIN
            INSERT INTO outbox_counts (connector, status, n) VALUES (NEW.connector, NEW.status, 1)
                ON CONFLICT (connector, status) DO UPDATE SET n = n + 1;
        END;
        CREATE TRIGGER outbox_counts_update AFTER UPDATE OF connector, status ON outbox
            WHEN OLD.connector IS NOT NEW.connector OR OLD.status IS NOT NEW.status BEGIN
            UPDATE outbox_counts SET n = n - 1
                WHERE connector = OLD.connector AND status = OLD.status;
            INSERT INTO outbox_counts (connector, status, n) VALUES (NEW.connector, NEW.status, 1)
                ON CONFLICT (connector, status) DO UPDATE SET n = n + 1;
        END;
        CREATE TRIGGER outbox_counts_delete AFTER DELETE ON outbox BEGIN
            UPDATE outbox_counts SET n = n - 1
                WHERE connector = OLD.connector AND status = OLD.status;
        END;

        CREATE TABLE inbox_counts (
            connector TEXT NOT NULL,
            status TEXT NOT NULL,
            n INTEGER NOT NULL,
            PRIMARY KEY (connector, status)
        ) WITHOUT ROWID;
        INSERT INTO inbox_counts (connector, status, n)
            SELECT connector, status, count(*) FROM inbox GROUP BY connector, status;
        CREATE TRIGGER inbox_counts_insert AFTER INSERT ON inbox BEGIN
            INSERT INTO inbox_counts (connector, status, n) VALUES (NEW.connector, NEW.status, 1)
                ON CONFLICT (connector, status) DO UPDATE SET n = n + 1;
        END;
        CREATE TRIGGER inbox_counts_update AFTER UPDATE OF connector, status ON inbox
            WHEN OLD.connector IS NOT NEW.connector OR OLD.status IS NOT NEW.status BEGIN
            UPDATE inbox_counts SET n = n - 1
                WHERE connector = OLD.connector AND status = OLD.status;
            INSERT INTO inbox_counts (connector, status, n) VALUES (NEW.connector, NEW.status, 1)
                ON CONFLICT (connector, status) DO UPDATE SET n = n + 1;
        END;
        CREATE TRIGGER inbox_counts_delete AFTER DELETE ON inbox BEGIN
            UPDATE inbox_counts SET n = n - 1
                WHERE connector = OLD.connector AND status = OLD.status;
        END;

        -- incidents synced in the last day: the links updated since then, in number order
        CREATE INDEX links_connector_updated ON links(connector, updated_at, number);
        -- changes waiting long: the queued ones made before then (this index starts with the
        -- columns of outbox_connector_status, which it replaces)
        DROP INDEX outbox_connector_status;
        CREATE INDEX outbox_connector_status ON outbox(connector, status, created_at);
        -- the last delivery and the last event processed: the newest entry of these
        CREATE INDEX outbox_delivered ON outbox(connector, done_at) WHERE status = 'done';
        CREATE INDEX inbox_processed ON inbox(connector, processed_at) WHERE status = 'done';
        -- the latest rate limit and the latest error: the newest call that has one, however
        -- many calls came since
        CREATE INDEX calls_rate_limits ON calls(connector, at) WHERE rate_limit IS NOT NULL;
        CREATE INDEX calls_errors ON calls(connector, at) WHERE error IS NOT NULL;
        """,
    ),
    (
        "0013_remote_states",
        """
        -- Links keep a remote incident's state in im's words (im.RemoteStatus), whatever
        -- the remote system calls it: an open one was stored in the first connector's word.
        UPDATE links SET remote_status = 'open' WHERE remote_status = 'triggered';
        """,
    ),
    (
        "0014_sla_unbreached",
        """
        -- A check (every 15 s) reads only the timers overdue and not yet breached: each
        -- incident says which of its timers was breached (by the start of the timer, which a
        -- reopen moves), and a partial index holds only the incidents whose running timer
        -- was not, so the breaches recorded long ago are not read again at every check.
        ALTER TABLE incidents ADD COLUMN ack_breached_start TEXT;
        ALTER TABLE incidents ADD COLUMN resolve_breached_start TEXT;
        UPDATE incidents SET ack_breached_start = coalesce(reopened_at, created_at)
            WHERE EXISTS (SELECT 1 FROM sla_breaches AS b WHERE b.number = incidents.number
                          AND b.kind = 'ack'
                          AND b.started_at = coalesce(incidents.reopened_at,
                                                      incidents.created_at));
        UPDATE incidents SET resolve_breached_start = coalesce(reopened_at, created_at)
            WHERE EXISTS (SELECT 1 FROM sla_breaches AS b WHERE b.number = incidents.number
                          AND b.kind = 'resolve'
                          AND b.started_at = coalesce(incidents.reopened_at,
                                                      incidents.created_at));
        CREATE INDEX incidents_ack_due ON incidents(severity, coalesce(reopened_at, created_at))
            WHERE status = 'open'
            AND ack_breached_start IS NOT coalesce(reopened_at, created_at);
        CREATE INDEX incidents_resolve_due
            ON incidents(severity, coalesce(reopened_at, created_at))
            WHERE status IN ('open', 'mitigated')
            AND resolve_breached_start IS NOT coalesce(reopened_at, created_at);
        DROP INDEX incidents_sla_due;
        """,
    ),
    (
        "0015_workflows",
        """
        -- Workflow rules: a trigger, conditions and steps (actions with their settings).
        CREATE TABLE workflows (
            name TEXT PRIMARY KEY,
            trigger TEXT NOT NULL,
            conditions TEXT NOT NULL DEFAULT '{}',
            steps TEXT NOT NULL DEFAULT '[]',
            enabled INTEGER NOT NULL DEFAULT 1,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL
        );
        -- One row per step of a rule and triggering timeline event (queued once: the unique
        -- key), run as the outbox is delivered.
        -- status: pending -> running (claimed, lease_until) -> done | failed
        CREATE TABLE workflow_runs (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            workflow TEXT NOT NULL,
            step INTEGER NOT NULL,
            action TEXT NOT NULL,
            settings TEXT NOT NULL DEFAULT '{}',
            number INTEGER NOT NULL REFERENCES incidents(number),
            trigger TEXT NOT NULL,
            event_id INTEGER NOT NULL,
            status TEXT NOT NULL DEFAULT 'pending',
            attempts INTEGER NOT NULL DEFAULT 0,
            next_attempt_at TEXT NOT NULL,
            lease_until TEXT,
            last_error TEXT,
            created_at TEXT NOT NULL,
            done_at TEXT,
            UNIQUE (workflow, step, event_id)
        );
        CREATE INDEX workflow_runs_open ON workflow_runs(status, next_attempt_at);
        CREATE INDEX workflow_runs_incident ON workflow_runs(number, id);
        """,
    ),
    (
        "0016_seen_keys",
        """
        -- Keys seen once (Runtime.first_time): a request that may come again (a replay, an
        -- at-least-once delivery) is recognised by its key until the key expires; the hourly
        -- housekeeping forgets the expired ones, found by when they expire.
        CREATE TABLE seen_keys (
            key TEXT PRIMARY KEY,
            expires_at TEXT NOT NULL
        ) WITHOUT ROWID;
        CREATE INDEX seen_keys_expires ON seen_keys(expires_at);
        """,
    ),
    (
        "0017_outbox_origin",
        """
        -- The system each queued change came from ("im", or the connector it came through),
        -- for a connector that asks for the changes made through it too (a chat message that
        -- shows im's state): it tells its own changes from the others by this.
        ALTER TABLE outbox ADD COLUMN origin_system TEXT;
        """,
    ),
    (
        "0018_calls_retention",
        """
        -- Call records are forgotten after `retention.calls_days`: the hourly purge finds
        -- them by when they were made, of every connector at once, not by reading every call
        -- (calls_connector_at starts with the connector).
        CREATE INDEX calls_at ON calls(at);
        """,
    ),
    (
        "0019_outbox_claimable",
        """
        -- The changes still to deliver, in the order they are claimed: a claim reads these,
        -- not the delivered rows kept for `retention.outbox_days` (hundreds of thousands on a
        -- busy home), which it read one by one before.
        CREATE INDEX outbox_claimable ON outbox(next_attempt_at, id)
            WHERE status IN ('pending', 'delivering');
        """,
    ),
]
