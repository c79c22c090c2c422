/* Names: status codes, the rule vocabulary as written in scripts, and the catalog of check
 * codes. One table each, so the enum, the scripts and the docs cannot drift apart. */
#include "names.h"

#include <string.h>

static const char *const status_names[] = {
#define TG_STATUS_NAME(name, msg) "TG_" #name,
    TG_STATUS_LIST(TG_STATUS_NAME)
#undef TG_STATUS_NAME
};

static const char *const status_msgs[] = {
#define TG_STATUS_MSG(name, msg) msg,
    TG_STATUS_LIST(TG_STATUS_MSG)
#undef TG_STATUS_MSG
};

const char *tg_status_name(int s) {
    return s >= 0 && s < TG_STATUS_COUNT ? status_names[s] : "TG_?";
}

const char *tg_strerror(int s) {
    return s >= 0 && s < TG_STATUS_COUNT ? status_msgs[s] : "unknown status";
}

const char *const tg__path_names[] = {"index",          "detail",           "row_action",
                                      "bulk_action",    "relation_manager", "global_search",
                                      "canonical_viewer", NULL};
const char *const tg__anchor_names[] = {"route_tenant", "owner_record", "explicit_record_lookup",
                                        NULL};
const char *const tg__posture_names[] = {"scoped", "disabled", "not_applicable", NULL};
const char *const tg__action_status_names[] = {"declared", "baseline_exemption", NULL};
const char *const tg__lookup_names[] = {"same_as_list_scope", "explicit_exception", NULL};
const char *const tg__tenant_source_names[] = {"route_tenant", "panel_tenant",
                                               "explicit_record_owner", NULL};
const char *const tg__search_rule_names[] = {"scoped_only", "disabled", NULL};
const char *const tg__scenario_names[] = {"positive_scope",
                                          "wrong_tenant_index",
                                          "wrong_tenant_detail",
                                          "wrong_tenant_row_action",
                                          "wrong_tenant_bulk_action",
                                          "wrong_tenant_relation_manager",
                                          "safe_search",
                                          NULL};
const char *const tg__exception_kind_names[] = {"workspace_admin_canonical_viewer",
                                                "workspace_owned_reference_surface",
                                                "deferred_family", NULL};
const char *const tg__filter_op_names[] = {"is_null", "is_not_null", "eq", "ne", "lt", "le",
                                           "gt",      "ge",          "in", "not_in", NULL};
const char *const tg__check_names[] = {"workspace_member", "tenant_entitled",
                                       "record_in_workspace", "record_in_tenant", "capability",
                                       NULL};

static const char *name_at(const char *const *names, int n, int i) {
    return i >= 0 && i < n ? names[i] : "?";
}

const char *tg_path_type_name(tg_path_type t) { return name_at(tg__path_names, TG_PATH_COUNT, (int)t); }
const char *tg_anchor_name(tg_anchor a) { return name_at(tg__anchor_names, 3, (int)a); }
const char *tg_search_posture_name(tg_search_posture p) { return name_at(tg__posture_names, 3, (int)p); }
const char *tg_action_status_name(tg_action_status s) { return name_at(tg__action_status_names, 2, (int)s); }
const char *tg_lookup_name(tg_lookup l) { return name_at(tg__lookup_names, 2, (int)l); }
const char *tg_tenant_source_name(tg_tenant_source s) { return name_at(tg__tenant_source_names, 3, (int)s); }
const char *tg_search_rule_name(tg_search_rule r) { return name_at(tg__search_rule_names, 2, (int)r); }
const char *tg_scenario_type_name(tg_scenario_type t) { return name_at(tg__scenario_names, TG_SCENARIO_COUNT, (int)t); }
const char *tg_exception_kind_name(tg_exception_kind k) { return name_at(tg__exception_kind_names, 3, (int)k); }

const char *tg_filter_op_name(tg_filter_op op) { return name_at(tg__filter_op_names, TG_FILTER_OP_COUNT, (int)op); }

const char *tg_check_name(unsigned bit) {
    for (int i = 0; tg__check_names[i]; i++)
        if (bit == (1u << i))
            return tg__check_names[i];
    return NULL;
}

int tg__name_index(const char *const *names, const char *s) {
    for (int i = 0; s && names[i]; i++)
        if (strcmp(names[i], s) == 0)
            return i;
    return -1;
}

int tg_path_type_index(const char *name) { return tg__name_index(tg__path_names, name); }

int tg_rules_family_index(const tg_rules *r, const char *name) {
    for (size_t i = 0; r && name && i < r->n_families; i++)
        if (strcmp(r->families[i].name, name) == 0)
            return (int)i;
    return -1;
}

/* The catalog of check codes. The codes are stable: tools match on them. */
static const tg_check_info checks[] = {
    {"script_error", TG_LEVEL_ERROR, "the rule file does not parse, or raised an error while running"},
    {"instruction_budget", TG_LEVEL_ERROR, "the rule file ran longer than the instruction budget (an endless loop?)"},
    {"memory_cap", TG_LEVEL_ERROR, "the rule file (or the rules compiled from it) used more memory than the loading cap"},
    {"cpu_budget", TG_LEVEL_ERROR, "loading the rule files used more CPU time than the budget (work inside library functions counts)"},
    {"allocation_budget", TG_LEVEL_ERROR, "the rule files allocated more bytes in total than the allocation budget (8 times the memory cap)"},
    {"limit_exceeded", TG_LEVEL_ERROR, "more rule files, declarations, names, list items or bytes than the loader or compiler accepts, or more roles or rows in the role_grants table"},
    {"bad_option", TG_LEVEL_ERROR, "a loading option (memory_cap, instruction_budget) is outside its allowed range"},
    {"too_many_findings", TG_LEVEL_WARNING, "the list of findings stopped at its cap; an error when an error was left out"},
    {"unknown_global", TG_LEVEL_ERROR, "the rule file used a global that is not part of the rule language (io, os, require, a typo...)"},
    {"bad_declaration", TG_LEVEL_ERROR, "a declaration is not written in its form, e.g. family \"Name\" { ... }"},
    {"file_error", TG_LEVEL_ERROR, "the rule directory or a rule file cannot be read, or the database to check against is missing or not a database"},
    {"no_rules", TG_LEVEL_ERROR, "the rule directory holds no .lua file"},
    {"unknown_field", TG_LEVEL_ERROR, "a field that this kind of rule object does not have (a typo?)"},
    {"wrong_type", TG_LEVEL_ERROR, "a field holds a value of the wrong type"},
    {"bad_value", TG_LEVEL_ERROR, "a field holds a value outside the allowed set"},
    {"missing_field", TG_LEVEL_ERROR, "a required field is absent"},
    {"duplicate_name", TG_LEVEL_ERROR, "two rule objects of one kind share a name"},
    {"unknown_family", TG_LEVEL_ERROR, "a reference to a family that is not declared"},
    {"unknown_path", TG_LEVEL_ERROR, "an access path type that does not exist, or that the family does not declare"},
    {"unknown_role", TG_LEVEL_ERROR, "a reference to a role that is not declared"},
    {"unknown_capability", TG_LEVEL_ERROR, "a reference to a capability that is not declared in capabilities { ... }, in a rule or in a row of the app.role_grants table"},
    {"not_entitled_not_404", TG_LEVEL_ERROR, "an access path whose not-entitled result is not 404"},
    {"missing_capability_not_403", TG_LEVEL_ERROR, "an access path whose missing-capability result is not 403"},
    {"exemption_without_reason", TG_LEVEL_ERROR, "action_surface_status = \"baseline_exemption\" without action_surface_reason"},
    {"scoped_search_without_path", TG_LEVEL_ERROR, "search_posture = \"scoped\" but no global_search path"},
    {"search_path_without_scoped", TG_LEVEL_ERROR, "a global_search path on a family whose search_posture is not \"scoped\""},
    {"search_rule_mismatch", TG_LEVEL_ERROR, "the query rule's search_rule disagrees with the family's search_posture"},
    {"exception_without_checks", TG_LEVEL_ERROR, "a scope exception without still_required_checks"},
    {"table_claimed_twice", TG_LEVEL_ERROR, "one table claimed by two families, a family and a residual entry, or an application table"},
    {"bad_identifier", TG_LEVEL_ERROR, "a table or column name that is not a plain SQL identifier"},
    {"bad_row_filter", TG_LEVEL_ERROR, "a row_filter that is not a list of conditions { column = ..., op = ..., value = ... } with a known op and the values that op takes"},
    {"missing_table", TG_LEVEL_ERROR, "a mapped table does not exist in the database"},
    {"missing_column", TG_LEVEL_ERROR, "a mapped column does not exist in the database"},
    {"family_key_not_unique", TG_LEVEL_ERROR, "a family's id column is not a key of its table, alone or with its tenant column (a PRIMARY KEY, or NOT NULL columns with a UNIQUE index), so an id could name several rows"},
    {"family_key_with_tenant", TG_LEVEL_INFO, "a family keyed on (tenant, id): every read by id pins the route tenant, and a path without one refuses an id two tenants hold (404 ambiguous_id)"},
    {"drift", TG_LEVEL_WARNING, "a table is tenant-owned (a column with a foreign key to the tenants table, or named like a tenant column the rules use) but no family, residual entry, exception or app table covers it"},
    {"capability_never_granted", TG_LEVEL_WARNING, "a capability that a path or exception needs is granted by no role: the action is always 403"},
    {"unused_capability", TG_LEVEL_WARNING, "a declared capability that no role grants and no rule needs"},
    {"path_without_capability", TG_LEVEL_WARNING, "an access path declared without a capability: it answers 403 to every caller"},
    {"exception_without_capability", TG_LEVEL_WARNING, "a scope exception whose still_required_checks do not list capability: it answers 403 to every caller"},
    {"rls_missing", TG_LEVEL_WARNING, "PostgreSQL: row-level security is on for some tenant-owned tables, but a table lacks it or tenantguard's policy"},
    {"rls_owner_not_forced", TG_LEVEL_WARNING, "PostgreSQL: the connecting role owns a table with row-level security and FORCE ROW LEVEL SECURITY is off, so the policy does not apply to it"},
    {"rls_bypassed", TG_LEVEL_WARNING, "PostgreSQL: the connecting role is a superuser or has BYPASSRLS, so row-level security never applies to it"},
    {"rls_no_index", TG_LEVEL_WARNING, "PostgreSQL: no valid index starts with the tenant column of a table under the policy, so its predicate scans the whole table"},
    {"rls_session_setting", TG_LEVEL_WARNING, "PostgreSQL: tenantguard.tenant_id is set at session level (SET, ALTER ROLE/DATABASE ... SET), where it outlives the transaction and a pooler can hand it to another client"},
    /* lint --target citus (core/citus.c): what a Citus deployment requires */
    {"citus_key_without_tenant", TG_LEVEL_WARNING, "(lint --target citus) a primary or unique key of a tenant-owned table that does not include its tenant column: Citus refuses to distribute the table"},
    {"citus_foreign_key_without_tenant", TG_LEVEL_WARNING, "(lint --target citus) a foreign key between two tenant-owned tables without the tenant column on both sides: Citus refuses it between distributed tables"},
    {"citus_nullable_tenant", TG_LEVEL_WARNING, "(lint --target citus) the tenant column of a tenant-owned table allows NULL: Citus refuses NULL in a distribution column"},
    {"citus_references_distributed", TG_LEVEL_WARNING, "(lint --target citus) a table without a tenant column (a reference or local table on Citus) with a foreign key to a tenant-owned table"},
    {"citus_reference_table", TG_LEVEL_INFO, "(lint --target citus) a table every shard joins (workspaces, tenants, the membership tables, and what they reference) that should be a reference table"},
    {"citus_distribution", TG_LEVEL_INFO, "(lint --target citus) a tenant-owned table to distribute by its tenant column, colocated with the other tenant-owned tables"},
    {"citus_multi_shard_path", TG_LEVEL_INFO, "(lint --target citus) paths whose statements do not pin one tenant (the canonical viewer, an exception's list and reads by id): on Citus they go to every shard"},
};

const tg_check_info *tg_check_info_get(size_t i) {
    return i < sizeof checks / sizeof checks[0] ? &checks[i] : NULL;
}
