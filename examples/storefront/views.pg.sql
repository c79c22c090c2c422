-- The storefront's views in PostgreSQL's dialect, for its copy made by `tenantguard pg-load`
-- (which copies tables, not views: SQLite's view text does not always mean the same there).
-- Run as the owner of the copied tables, with search_path set to their schema; the
-- application's role gets SELECT, as on the tables. Names keep their SQLite case, quoted.
CREATE VIEW active_staff AS
  SELECT staff_id, org_id, role FROM org_staff WHERE active = 1;
CREATE VIEW open_orders AS
  SELECT id, account_id, "OrderNo", "Total" FROM "order" WHERE "Status" = 'open';
-- SQLite's group_concat walks ticket_tags in key order: the tags in order
CREATE VIEW "Ticket Board" AS
  SELECT t.id, t.account_id, t."Title", string_agg(g.tag, ',' ORDER BY g.tag) AS tags
    FROM tickets t LEFT JOIN ticket_tags g ON g.ticket_id = t.id GROUP BY t.id;
GRANT SELECT ON active_staff, open_orders, "Ticket Board" TO tg_app;
