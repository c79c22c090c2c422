/* The rule vocabulary: NULL-terminated name lists in enum order. */
#ifndef TG_NAMES_H
#define TG_NAMES_H

#include "util.h"

TG_HIDDEN extern const char *const tg__path_names[];
TG_HIDDEN extern const char *const tg__anchor_names[];
TG_HIDDEN extern const char *const tg__posture_names[];
TG_HIDDEN extern const char *const tg__action_status_names[];
TG_HIDDEN extern const char *const tg__lookup_names[];
TG_HIDDEN extern const char *const tg__tenant_source_names[];
TG_HIDDEN extern const char *const tg__search_rule_names[];
TG_HIDDEN extern const char *const tg__scenario_names[];
TG_HIDDEN extern const char *const tg__exception_kind_names[];
TG_HIDDEN extern const char *const tg__check_names[];
TG_HIDDEN extern const char *const tg__filter_op_names[];

/* Index of s in a NULL-terminated list, -1 when absent. */
TG_HIDDEN int tg__name_index(const char *const *names, const char *s);

#endif
