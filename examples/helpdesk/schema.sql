-- helpdesk: a support-desk SaaS, as it runs before adopting tenantguard.
--
-- Every key is text: records, workspaces and tenants use UUIDs, users are keyed by their
-- identity provider's subject ("auth0|..."). Records are soft-deleted (deleted_at), and so
-- are tenants. Roles live in the database (role_capabilities). There is no operation-run
-- or audit-log table: tenantguard keeps its own.

CREATE TABLE workspaces (
  id         TEXT PRIMARY KEY NOT NULL,
  name       TEXT NOT NULL,
  created_at TEXT NOT NULL
);

CREATE TABLE tenants (
  id           TEXT PRIMARY KEY NOT NULL,
  workspace_id TEXT NOT NULL REFERENCES workspaces(id),
  name         TEXT NOT NULL,
  deleted_at   TEXT
);
CREATE INDEX tenants_workspace ON tenants(workspace_id);

CREATE TABLE users (
  id    TEXT PRIMARY KEY NOT NULL,      -- the identity provider's subject
  email TEXT NOT NULL UNIQUE
);

CREATE TABLE workspace_memberships (
  id           TEXT PRIMARY KEY NOT NULL,
  workspace_id TEXT NOT NULL,
  user_id      TEXT NOT NULL,
  role         TEXT,                    -- NULL: a member without a role
  UNIQUE (user_id, workspace_id)
);

CREATE TABLE tenant_memberships (
  id        TEXT PRIMARY KEY NOT NULL,
  tenant_id TEXT NOT NULL,
  user_id   TEXT NOT NULL,
  role      TEXT,                       -- NULL: the workspace role applies
  UNIQUE (user_id, tenant_id)
);

-- which role grants which capability ("*": every capability)
CREATE TABLE role_capabilities (
  role       TEXT NOT NULL,
  capability TEXT NOT NULL,
  PRIMARY KEY (role, capability)
);

-- tenant-owned tables (no workspace_id yet: the rollout adds it)
CREATE TABLE tickets (
  id              TEXT PRIMARY KEY NOT NULL,
  tenant_id       TEXT NOT NULL,
  subject         TEXT NOT NULL,
  requester_email TEXT,
  status          TEXT NOT NULL DEFAULT 'open',
  priority        INTEGER NOT NULL DEFAULT 2,
  deleted_at      TEXT,
  created_at      TEXT NOT NULL
);
CREATE INDEX tickets_tenant ON tickets(tenant_id);

CREATE TABLE ticket_comments (
  id         TEXT PRIMARY KEY NOT NULL,
  tenant_id  TEXT NOT NULL,
  ticket_id  TEXT,
  body       TEXT NOT NULL,
  author_id  TEXT,
  deleted_at TEXT,
  created_at TEXT NOT NULL
);
CREATE INDEX ticket_comments_tenant ON ticket_comments(tenant_id);
CREATE INDEX ticket_comments_ticket ON ticket_comments(ticket_id);

CREATE TABLE kb_articles (
  id         TEXT PRIMARY KEY NOT NULL,
  tenant_id  TEXT NOT NULL,
  title      TEXT NOT NULL,
  status     TEXT NOT NULL DEFAULT 'draft',   -- draft, published, retracted
  archived   INTEGER NOT NULL DEFAULT 0,
  created_at TEXT NOT NULL
);
CREATE INDEX kb_articles_tenant ON kb_articles(tenant_id);

CREATE TABLE macros (
  id         TEXT PRIMARY KEY NOT NULL,
  tenant_id  TEXT NOT NULL,
  name       TEXT NOT NULL,
  actions    TEXT NOT NULL DEFAULT '[]',
  created_at TEXT NOT NULL
);
CREATE INDEX macros_tenant ON macros(tenant_id);

CREATE TABLE ticket_attachments (
  id         TEXT PRIMARY KEY NOT NULL,
  tenant_id  TEXT NOT NULL,
  ticket_id  TEXT,
  file_name  TEXT NOT NULL,
  bytes      INTEGER NOT NULL DEFAULT 0,
  created_at TEXT NOT NULL
);

CREATE TABLE sla_events (
  id         TEXT PRIMARY KEY NOT NULL,
  tenant_id  TEXT NOT NULL,
  ticket_id  TEXT,
  kind       TEXT NOT NULL,
  at         TEXT NOT NULL
);

-- satisfaction surveys: bound to a workspace already, a tenant only sometimes (a scope
-- exception until they are split)
CREATE TABLE csat_surveys (
  id           TEXT PRIMARY KEY NOT NULL,
  workspace_id TEXT NOT NULL,
  tenant_id    TEXT,
  score        INTEGER NOT NULL CHECK (score BETWEEN 1 AND 5),
  created_at   TEXT NOT NULL
);

-- the app's own trigger and view stay as they are through the rollout
CREATE TRIGGER tickets_closed_touch AFTER UPDATE OF status ON tickets
  WHEN NEW.status = 'closed'
  BEGIN UPDATE sla_events SET kind = kind WHERE ticket_id = NEW.id; END;
CREATE VIEW open_tickets AS
  SELECT id, tenant_id, subject FROM tickets WHERE status = 'open' AND deleted_at IS NULL;
