-- ledger: an accounting SaaS laid out the way a Citus deployment requires.
--
-- A workspace is an accounting firm; a tenant is one client company whose books the firm
-- keeps. Every tenant-owned table is keyed PRIMARY KEY (tenant_id, id): ids are numbered per
-- tenant (invoice 1 exists in several companies, with different data), every foreign key
-- between tenant-owned tables carries the tenant ((tenant_id, invoice_id) REFERENCES
-- invoices (tenant_id, id)), and every tenant column is NOT NULL. So each tenant-owned
-- table can be distributed by tenant_id, all of them colocated; workspaces, tenants, users
-- and the memberships stay plain tables (reference tables on Citus). Documents are keyed by
-- UUID text, unique in practice, and opened through shared links without a route tenant;
-- write-offs waiting for a firm partner are numbered from one sequence for all tenants.
-- The app keeps its own audit log and operation runs (local tables on Citus).
--
-- The tenant-owned tables have no foreign key to tenants: the rollout's phase 3 adds
-- (tenant_id, workspace_id) -> tenants (id, workspace_id), and rows of a company that was
-- hard-deleted (tenant 99) are left for the backfill to find.

CREATE TABLE workspaces (
  id   INTEGER PRIMARY KEY,
  name TEXT NOT NULL UNIQUE,
  plan TEXT NOT NULL CHECK (plan IN ('solo', 'firm', 'enterprise'))
);

CREATE TABLE tenants (
  id           INTEGER PRIMARY KEY,
  workspace_id INTEGER NOT NULL REFERENCES workspaces(id),
  name         TEXT NOT NULL,
  currency     TEXT NOT NULL DEFAULT 'EUR' CHECK (length(currency) = 3)
);
CREATE INDEX tenants_workspace ON tenants(workspace_id);

CREATE TABLE users (
  id    INTEGER PRIMARY KEY,
  email TEXT NOT NULL UNIQUE
);

CREATE TABLE workspace_memberships (
  id           INTEGER PRIMARY KEY,
  workspace_id INTEGER NOT NULL REFERENCES workspaces(id),
  user_id      INTEGER NOT NULL REFERENCES users(id),
  role         TEXT,                    -- NULL: a member without a role
  UNIQUE (user_id, workspace_id)
);

CREATE TABLE tenant_memberships (
  id        INTEGER PRIMARY KEY,
  tenant_id INTEGER NOT NULL REFERENCES tenants(id),
  user_id   INTEGER NOT NULL REFERENCES users(id),
  role      TEXT,                       -- NULL: the workspace role applies
  UNIQUE (user_id, tenant_id)
);

CREATE TABLE audit_logs (
  id           INTEGER PRIMARY KEY,
  workspace_id INTEGER REFERENCES workspaces(id),
  tenant_id    INTEGER,
  actor_id     INTEGER,
  action       TEXT NOT NULL,
  subject      TEXT,
  metadata     TEXT,
  created_at   TEXT NOT NULL
);

CREATE TABLE operation_runs (
  id           INTEGER PRIMARY KEY,
  workspace_id INTEGER REFERENCES workspaces(id),
  tenant_id    INTEGER,
  type         TEXT NOT NULL,
  status       TEXT NOT NULL,
  summary      TEXT,
  created_at   TEXT NOT NULL,
  started_at   TEXT,
  finished_at  TEXT
);

-- tenant-owned tables (no workspace_id yet: the rollout adds it)
CREATE TABLE customers (
  tenant_id INTEGER NOT NULL,
  id        INTEGER NOT NULL,
  name      TEXT NOT NULL CHECK (name <> ''),
  email     TEXT,
  vat_no    TEXT,
  PRIMARY KEY (tenant_id, id)
);

CREATE TABLE invoices (
  tenant_id   INTEGER NOT NULL,
  id          INTEGER NOT NULL,
  customer_id INTEGER NOT NULL,
  number      TEXT NOT NULL,
  status      TEXT NOT NULL CHECK (status IN ('draft', 'open', 'paid', 'void')),
  total_cents INTEGER NOT NULL CHECK (total_cents >= 0),
  issued_on   TEXT NOT NULL DEFAULT '2026-01-01',
  PRIMARY KEY (tenant_id, id),
  UNIQUE (tenant_id, number),
  FOREIGN KEY (tenant_id, customer_id) REFERENCES customers (tenant_id, id)
);
CREATE INDEX invoices_customer ON invoices(tenant_id, customer_id);

CREATE TABLE invoice_lines (
  tenant_id   INTEGER NOT NULL,
  id          INTEGER NOT NULL,
  invoice_id  INTEGER NOT NULL,
  description TEXT NOT NULL,
  quantity    INTEGER NOT NULL CHECK (quantity > 0),
  unit_cents  INTEGER NOT NULL CHECK (unit_cents >= 0),
  PRIMARY KEY (tenant_id, id),
  FOREIGN KEY (tenant_id, invoice_id) REFERENCES invoices (tenant_id, id)
);
CREATE INDEX invoice_lines_invoice ON invoice_lines(tenant_id, invoice_id);

CREATE TABLE payments (
  tenant_id    INTEGER NOT NULL,
  id           INTEGER NOT NULL,
  invoice_id   INTEGER NOT NULL,
  amount_cents INTEGER NOT NULL CHECK (amount_cents > 0),
  method       TEXT NOT NULL CHECK (method IN ('card', 'transfer', 'cash')),
  received_on  TEXT NOT NULL,
  PRIMARY KEY (tenant_id, id),
  FOREIGN KEY (tenant_id, invoice_id) REFERENCES invoices (tenant_id, id)
) WITHOUT ROWID;

-- receipts and contracts, keyed by UUID text: opened through shared links
CREATE TABLE documents (
  tenant_id  INTEGER NOT NULL,
  id         TEXT NOT NULL,
  invoice_id INTEGER,
  filename   TEXT NOT NULL,
  kind       TEXT NOT NULL CHECK (kind IN ('receipt', 'contract', 'statement')),
  PRIMARY KEY (tenant_id, id),
  FOREIGN KEY (tenant_id, invoice_id) REFERENCES invoices (tenant_id, id)
);

-- write-offs waiting for a firm partner: a scope exception; ids from one sequence
CREATE TABLE write_offs (
  tenant_id    INTEGER NOT NULL,
  id           INTEGER NOT NULL,
  workspace_id INTEGER NOT NULL,
  invoice_id   INTEGER NOT NULL,
  amount_cents INTEGER NOT NULL CHECK (amount_cents >= 0),
  reason       TEXT NOT NULL CHECK (reason <> ''),
  PRIMARY KEY (tenant_id, id),
  FOREIGN KEY (tenant_id, invoice_id) REFERENCES invoices (tenant_id, id)
);
