/* Reading the database schema. */
#ifndef TG_CATALOG_H
#define TG_CATALOG_H

#include "rules.h"

/* 1 when the table exists, 0 when not, -1 on a database error. */
TG_HIDDEN int tg__table_exists(tg__db *db, const char *table);
/* 1 when table.column exists, 0 when not, -1 on a database error. */
TG_HIDDEN int tg__column_exists(tg__db *db, const char *table, const char *column);

#endif
