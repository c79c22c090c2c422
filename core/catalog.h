/* Reading the database schema. */
#ifndef TG_CATALOG_H
#define TG_CATALOG_H

#include "rules.h"

/* 1 when the table exists, 0 when not, -1 on a database error. */
TG_HIDDEN int tg__table_exists(tg__db *db, const char *table);
/* 1 when table.column exists, 0 when not, -1 on a database error. */
TG_HIDDEN int tg__column_exists(tg__db *db, const char *table, const char *column);
/* How `column` identifies a row of `table` (a view follows its id column to its table, and
 * is never keyed with its tenant): 1 alone, 2 only together with `tenant` (NULL: not
 * asked), 0 neither, -1 database error. */
TG_HIDDEN int tg__key_kind(tg__db *db, const char *table, const char *column,
                           const char *tenant);

#endif
