-- tenantguard pg-load: a SQLite database's tables copied into PostgreSQL (tg.pg_load, whose
-- C part is core/pg_load.c). Registered by scripts/cli.lua:
--   require("tenantguard.pgload")(command, usage, { printf =, eprintf =, usage_error =,
--     file_exists = })
local tg = require "tenantguard"

local USAGE = [[
usage: tenantguard pg-load --from FILE.db --to URI [--owner-role ROLE] [--grant-to ROLE]
                           [--int-type bigint|integer] [--uuid-columns auto|none] [--replace]

Copies the tables of a SQLite database (not its views or triggers) into a PostgreSQL
database, in one transaction: nothing is left behind when it fails.

  --from FILE.db       the SQLite database (read only)
  --to URI             the PostgreSQL database: postgresql://user@host/db or
                       "host=... dbname=..." (any libpq connection string)
  --owner-role ROLE    SET ROLE ROLE first, so that it owns the tables (default: the login)
  --grant-to ROLE      GRANT SELECT, INSERT, UPDATE, DELETE on every table to ROLE, and
                       USAGE, SELECT on the identity sequences (the application's role)
  --int-type T         what INT columns become: bigint (default) or integer
  --uuid-columns M     auto (default): a text column whose every value is a canonical
                       lower-case UUID becomes uuid (both sides of a foreign key alike);
                       none: text stays text
  --replace            drop a table that exists already (default: that is an error)

Types: INT -> bigint, TEXT/CHAR/CLOB -> text, BLOB -> bytea, REAL/FLOA/DOUB -> double
precision, NUMERIC/DECIMAL -> numeric, no type (or another) -> text; an INTEGER PRIMARY KEY
becomes an identity column that continues after the largest id. Primary keys, NOT NULL,
literal defaults, UNIQUE constraints and indexes on plain columns are copied, then foreign
keys (NOT VALID where the source holds orphan rows, which SQLite allowed).]]

return function(command, usage, cli)
  usage["pg-load"] = USAGE
  command("pg-load", { from = "text", to = "text", ["owner-role"] = "text",
    ["grant-to"] = "text", ["int-type"] = "text", ["uuid-columns"] = "text", replace = "flag" },
  function(opts)
    if not opts.from then cli.usage_error("--from FILE.db is required") end
    if not opts.to then cli.usage_error("--to URI is required") end
    if not cli.file_exists(opts.from) then cli.usage_error("no such database: " .. opts.from) end
    local it, uc = opts["int-type"], opts["uuid-columns"]
    if it and it ~= "bigint" and it ~= "integer" then
      cli.usage_error(("--int-type must be bigint or integer, got '%s'"):format(it))
    end
    if uc and uc ~= "auto" and uc ~= "none" then
      cli.usage_error(("--uuid-columns must be auto or none, got '%s'"):format(uc))
    end
    local loaded, err = tg.pg_load { from = opts.from, to = opts.to,
      owner_role = opts["owner-role"], grant_to = opts["grant-to"], int_type = it,
      uuid_columns = uc, replace = opts.replace }
    if not loaded then
      cli.eprintf("tenantguard pg-load: %s\n", err)
      return 1
    end
    local rows = 0
    for _, t in ipairs(loaded) do
      cli.printf("%-32s %d rows\n", t.table, t.rows)
      rows = rows + t.rows
    end
    cli.printf("loaded %d tables, %d rows\n", #loaded, rows)
    return 0
  end)
end
