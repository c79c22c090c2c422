-- Surfaces that touch tenant data but are not ordinary families.

exception "CsatSurveys" {
  exception_kind = "deferred_family",
  table = "csat_surveys",
  surface = "SatisfactionReport",
  why_excepted = "Workspace-wide surveys, some about one tenant; a family once split.",
  still_required_checks = { "workspace_member", "record_in_workspace", "tenant_entitled",
                            "capability" },
  capability = "ticket.view",
}
