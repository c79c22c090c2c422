/* The second schema: an invoicing SaaS written without tenantguard in mind, with the shape of
 * issue 11 and names of its own. 2 workspaces (orgs), 200 tenants (clients, 100 per org),
 * 2,000 users (people), N rows of one tenant-owned table (invoices, keyed by invoice_id and
 * owned through client_id). The workspace membership (org_members) has no role; the role is
 * on the tenant entitlement (client_grants: viewer, editor, admin). Its rules are in
 * bench/second/rules.
 *
 * The numbers the benchmarks rely on:
 *   person 1     member of org 1, admin of clients 1-10
 *   person 2     member of org 1, viewer of client 1 (no invoice.edit: a row action is 403)
 *   person 3     member of org 1, entitled to no client
 *   persons 4-1998  members of org 1 (up to 1000) or org 2, each entitled to 10 clients of
 *                   their org with a role of the three
 *   persons 1999, 2000  members of nothing
 *   clients 1-100 in org 1, 101-200 in org 2; invoice n belongs to client (n - 1) % 200 + 1
 */
#include "bench.h"

#include <stdio.h>
#include <unistd.h>

static const char *const SCHEMA =
    "CREATE TABLE orgs (id INTEGER PRIMARY KEY, name TEXT NOT NULL, plan TEXT NOT NULL);"
    "CREATE TABLE clients (id INTEGER PRIMARY KEY, org_id INTEGER NOT NULL REFERENCES orgs(id),"
    "  name TEXT NOT NULL, country TEXT NOT NULL);"
    "CREATE INDEX clients_org ON clients(org_id);"
    "CREATE TABLE people (id INTEGER PRIMARY KEY, email TEXT NOT NULL UNIQUE,"
    "  display_name TEXT NOT NULL);"
    "CREATE TABLE org_members (org_id INTEGER NOT NULL REFERENCES orgs(id),"
    "  person_id INTEGER NOT NULL REFERENCES people(id), joined_at TEXT NOT NULL,"
    "  PRIMARY KEY (person_id, org_id)) WITHOUT ROWID;"
    "CREATE TABLE client_grants (person_id INTEGER NOT NULL REFERENCES people(id),"
    "  client_id INTEGER NOT NULL REFERENCES clients(id), role TEXT NOT NULL,"
    "  PRIMARY KEY (person_id, client_id)) WITHOUT ROWID;"
    "CREATE TABLE invoices (invoice_id INTEGER PRIMARY KEY,"
    "  client_id INTEGER NOT NULL REFERENCES clients(id), number TEXT NOT NULL,"
    "  amount_cents INTEGER NOT NULL, currency TEXT NOT NULL, status TEXT NOT NULL,"
    "  issued_at TEXT NOT NULL, memo TEXT);";

static const char *const DATA =
    "INSERT INTO orgs VALUES (1, 'Northwind', 'pro'), (2, 'Contoso', 'enterprise');"
    "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 200)"
    " INSERT INTO clients SELECT i, CASE WHEN i <= 100 THEN 1 ELSE 2 END, 'Client ' || i,"
    " substr('DEFRUSGBNL', 1 + (i % 5) * 2, 2) FROM n;"
    "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2000)"
    " INSERT INTO people SELECT i, 'person' || i || '@invoicing.test', 'Person ' || i FROM n;"
    "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1998)"
    " INSERT INTO org_members SELECT CASE WHEN i <= 1000 THEN 1 ELSE 2 END, i, '2024-01-01'"
    " FROM n;"
    "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 10)"
    " INSERT INTO client_grants SELECT 1, i, 'admin' FROM n;"
    "INSERT INTO client_grants VALUES (2, 1, 'viewer');"
    "WITH RECURSIVE p(i) AS (SELECT 4 UNION ALL SELECT i + 1 FROM p WHERE i < 1998),"
    " j(k) AS (SELECT 0 UNION ALL SELECT k + 1 FROM j WHERE k < 9)"
    " INSERT INTO client_grants SELECT i, CASE WHEN i <= 1000 THEN 0 ELSE 100 END"
    " + (i * 7 + k * 11) % 100 + 1, CASE (i + k) % 3 WHEN 0 THEN 'viewer' WHEN 1 THEN 'editor'"
    " ELSE 'admin' END FROM p, j;";

/* ?1: the number of invoices */
static const char *const INVOICES =
    "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?1)"
    " INSERT INTO invoices SELECT i, (i - 1) % 200 + 1, 'INV-' || (100000 + i),"
    " (i * 7919) % 250000, CASE i % 3 WHEN 0 THEN 'EUR' WHEN 1 THEN 'USD' ELSE 'GBP' END,"
    " CASE i % 4 WHEN 0 THEN 'draft' WHEN 1 THEN 'sent' WHEN 2 THEN 'paid' ELSE 'overdue' END,"
    " '2024-' || printf('%02d-%02d', 1 + i % 12, 1 + i % 28),"
    " CASE WHEN i % 5 = 0 THEN NULL ELSE 'Services rendered, order ' || i END FROM n";

static int exec(sqlite3 *db, const char *sql) {
    char *err = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &err) == SQLITE_OK)
        return 0;
    fprintf(stderr, "second schema: %s\n", err ? err : sqlite3_errmsg(db));
    sqlite3_free(err);
    return 1;
}

int bench_second_schema(const char *path, long rows) {
    if (access(path, F_OK) == 0)
        return 0;
    char tmp[1024];
    snprintf(tmp, sizeof tmp, "%s.building", path);
    remove(tmp);
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    int rc = 1;
    double t0 = bench_now();
    if (sqlite3_open(tmp, &db) != SQLITE_OK)
        goto done;
    if (exec(db, "PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF; "
                 "PRAGMA cache_size = -65536; BEGIN") ||
        exec(db, SCHEMA) || exec(db, DATA))
        goto done;
    if (sqlite3_prepare_v2(db, INVOICES, -1, &st, NULL) != SQLITE_OK)
        goto done;
    sqlite3_bind_int64(st, 1, rows);
    if (sqlite3_step(st) != SQLITE_DONE)
        goto done;
    /* the index after the rows: one sort instead of a million random inserts */
    if (exec(db, "CREATE INDEX invoices_client ON invoices(client_id); COMMIT;") ||
        exec(db, "PRAGMA journal_mode = WAL"))
        goto done;
    rc = 0;
done:
    if (rc)
        fprintf(stderr, "second schema: %s\n", db ? sqlite3_errmsg(db) : "cannot open");
    sqlite3_finalize(st);
    sqlite3_close(db);
    if (rc == 0 && rename(tmp, path) != 0) {
        perror(path);
        rc = 1;
    }
    if (rc)
        remove(tmp);
    else
        printf("second schema: built %s with %ld invoices in %.1f s\n", path, rows,
               bench_now() - t0);
    return rc;
}
