/* The SQL formatter: SQL text is never a format. A '%' that is not one of its conversions
 * (strftime's %Y pasted into a format once wrote "--15 ::" as a timestamp) poisons the buffer
 * instead of being guessed at, and text with '%' in it goes through %s unchanged. */
#include "../../core/sql.h"
#include "tg_test.h"

#include <string.h>

int main(void) {
    tg__buf b = {0};
    tg__sqlf(&b, &tg__sqlite, "SELECT %s FROM %I WHERE %I = %L AND x LIKE '%%a'", TG__SQL_NOW,
             "t\"x", "c", "it's");
    CHECK(!b.oom);
    CHECK(strcmp(tg__buf_str(&b),
                 "SELECT strftime('%Y-%m-%d %H:%M:%f', 'now') FROM \"t\"\"x\" WHERE \"c\" = "
                 "'it''s' AND x LIKE '%a'") == 0);
    tg__buf_free(&b);

    /* an unknown conversion: nothing guessed, the statement cannot be run */
    tg__buf c = {0};
    tg__sqlf(&c, &tg__sqlite, "SELECT strftime('%Y', 'now') FROM %I", "t");
    CHECK(c.oom);
    tg__buf_free(&c);

    tg__buf n = {0};
    tg__sqlf(&n, &tg__sqlite, "LIMIT %d OFFSET %lld", 5, (long long)-9223372036854775807LL - 1);
    CHECK(strcmp(tg__buf_str(&n), "LIMIT 5 OFFSET -9223372036854775808") == 0);
    tg__buf_free(&n);
    return tg_test_done();
}
