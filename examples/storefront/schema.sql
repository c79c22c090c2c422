-- storefront: an order-management SaaS nobody designed for tenantguard.
--
-- Workspaces are "Organizations" (OrgId), tenants are "accounts"; the tenant column is
-- account_id in most tables but acct in others, and the rollout's workspace column is
-- org_id. It has a table named with an SQL keyword ("order"), mixed-case identifiers, a
-- WITHOUT ROWID table keyed by text (Shipments), a composite-key WITHOUT ROWID residual
-- (ticket_tags), views with INSTEAD OF triggers over tenant-owned tables, workspace
-- memberships read through a view, and CHECK and UNIQUE columns on every table the matrix
-- fixture writes. Its audit log is its own activity_log.

CREATE TABLE Organizations (
  OrgId INTEGER PRIMARY KEY,
  Name  TEXT NOT NULL UNIQUE,
  Plan  TEXT NOT NULL CHECK (Plan IN ('free', 'team', 'enterprise', 'closed'))
);

CREATE TABLE accounts (
  id     INTEGER PRIMARY KEY,
  org_id INTEGER NOT NULL REFERENCES Organizations(OrgId),
  Slug   TEXT NOT NULL UNIQUE CHECK (length(Slug) <= 40),
  status TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'suspended'))
);
CREATE INDEX accounts_org ON accounts(org_id);

CREATE TABLE staff (
  id    INTEGER PRIMARY KEY,
  email TEXT NOT NULL UNIQUE
);

-- workspace memberships; the app reads them through the view active_staff
CREATE TABLE org_staff (
  id       INTEGER PRIMARY KEY,
  org_id   INTEGER NOT NULL,
  staff_id INTEGER NOT NULL,
  role     TEXT NOT NULL CHECK (role IN ('admin', 'clerk', 'auditor', 'none')),
  badge    TEXT NOT NULL UNIQUE,
  active   INTEGER NOT NULL DEFAULT 1 CHECK (active IN (0, 1)),
  UNIQUE (staff_id, org_id)
);
CREATE VIEW active_staff AS
  SELECT staff_id, org_id, role FROM org_staff WHERE active = 1;

-- tenant entitlements (role NULL: the workspace role applies)
CREATE TABLE account_grants (
  id         INTEGER PRIMARY KEY,
  acct       INTEGER NOT NULL,
  staff_id   INTEGER NOT NULL,
  role       TEXT CHECK (role IS NULL OR role IN ('admin', 'clerk', 'auditor')),
  grant_code TEXT NOT NULL UNIQUE,
  UNIQUE (staff_id, acct)
);

CREATE TABLE activity_log (
  LogId      INTEGER PRIMARY KEY,
  org_id     INTEGER,
  account_id INTEGER,
  verb       TEXT NOT NULL,
  target     TEXT,
  meta       TEXT,
  at         TEXT NOT NULL
);

-- tenant-owned tables (no org_id yet: the rollout adds it)
CREATE TABLE "order" (
  id         INTEGER PRIMARY KEY,
  account_id INTEGER NOT NULL,
  OrderNo    TEXT NOT NULL UNIQUE,
  Status     TEXT NOT NULL CHECK (Status IN ('open', 'paid', 'void')),
  Total      INTEGER NOT NULL CHECK (Total >= 0),
  placed_at  TEXT NOT NULL DEFAULT '2025-01-01'
);
CREATE INDEX order_account ON "order"(account_id);

CREATE TABLE Invoices (
  InvoiceId INTEGER PRIMARY KEY,
  acct      INTEGER NOT NULL REFERENCES accounts(id),
  order_id  INTEGER,
  Number    TEXT NOT NULL UNIQUE CHECK (Number <> ''),
  Amount    INTEGER NOT NULL CHECK (Amount BETWEEN 0 AND 1000000),
  Currency  TEXT NOT NULL CHECK (length(Currency) <= 3)
);
CREATE INDEX invoices_acct ON Invoices(acct);
CREATE INDEX invoices_order ON Invoices(order_id);

CREATE TABLE tickets (
  id         INTEGER PRIMARY KEY,
  account_id INTEGER NOT NULL,
  Title      TEXT NOT NULL CHECK (Title <> ''),
  Priority   INTEGER NOT NULL CHECK (Priority BETWEEN 1 AND 4),
  Code       TEXT NOT NULL UNIQUE
);
CREATE INDEX tickets_account ON tickets(account_id);

CREATE TABLE ticket_tags (
  ticket_id  INTEGER NOT NULL,
  tag        TEXT NOT NULL,
  account_id INTEGER NOT NULL,
  PRIMARY KEY (ticket_id, tag)
) WITHOUT ROWID;

CREATE TABLE Shipments (
  TrackingCode TEXT PRIMARY KEY NOT NULL,
  acct         INTEGER NOT NULL,
  Carrier      TEXT NOT NULL CHECK (Carrier IN ('ups', 'dhl', 'fedex')),
  Weight       INTEGER NOT NULL CHECK (Weight >= 1)
) WITHOUT ROWID;

-- refunds waiting for an organization admin: a scope exception, keyed by RefundId
CREATE TABLE refund_requests (
  RefundId   INTEGER PRIMARY KEY,
  org_id     INTEGER NOT NULL,
  account_id INTEGER,
  Reference  TEXT NOT NULL UNIQUE CHECK (length(Reference) <= 16),
  Reason     TEXT NOT NULL CHECK (Reason <> ''),
  Amount     INTEGER NOT NULL CHECK (Amount >= 0)
);

-- tenant-owned too, by a foreign key under yet another name
CREATE TABLE client_notes (
  id                INTEGER PRIMARY KEY,
  client_account_id INTEGER REFERENCES accounts(id),
  body              TEXT NOT NULL
);

-- the storefront's own views, with INSTEAD OF triggers, over tenant-owned tables
CREATE VIEW open_orders AS
  SELECT id, account_id, OrderNo, Total FROM "order" WHERE Status = 'open';
CREATE TRIGGER open_orders_insert INSTEAD OF INSERT ON open_orders
  BEGIN
    INSERT INTO "order" (account_id, OrderNo, Status, Total)
      VALUES (NEW.account_id, NEW.OrderNo, 'open', NEW.Total);
  END;
CREATE TRIGGER open_orders_update INSTEAD OF UPDATE OF Total ON open_orders
  BEGIN
    UPDATE "order" SET Total = NEW.Total WHERE id = OLD.id;
  END;
CREATE VIEW "Ticket Board" AS
  SELECT t.id, t.account_id, t.Title, group_concat(g.tag) AS tags
    FROM tickets t LEFT JOIN ticket_tags g ON g.ticket_id = t.id GROUP BY t.id;
CREATE TRIGGER ticket_board_tag INSTEAD OF UPDATE OF tags ON "Ticket Board"
  BEGIN
    INSERT OR IGNORE INTO ticket_tags (ticket_id, tag, account_id)
      VALUES (OLD.id, NEW.tags, OLD.account_id);
  END;
