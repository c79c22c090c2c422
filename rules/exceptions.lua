-- Surfaces that touch tenant data but are not ordinary tenant-owned surfaces. Each says why,
-- and which checks still apply.

exception "ProviderConnectionAdmin" {
  exception_kind = "workspace_admin_canonical_viewer",
  table = "provider_connections",
  surface = "ProviderConnectionResource",
  why_excepted = "Tenant-owned connection data shown in a workspace-admin default view.",
  still_required_checks = { "workspace_member", "record_in_workspace", "tenant_entitled",
                            "capability" },
  capability = "provider.manage",
}

exception "OperationRunMonitor" {
  exception_kind = "workspace_owned_reference_surface",
  table = "operation_runs",
  surface = "OperationRunResource",
  why_excepted = "Workspace-owned runs that deep-link into tenant records; the links go "
              .. "through the families' own paths.",
  still_required_checks = { "workspace_member", "record_in_workspace", "capability" },
  capability = "operations.view",
}

exception "AlertDeliveries" {
  exception_kind = "deferred_family",
  table = "alert_deliveries",
  surface = "AlertDeliveryResource",
  why_excepted = "Mixed workspace and tenant semantics; becomes a family once delivery "
              .. "targets are split.",
  still_required_checks = { "workspace_member", "record_in_workspace", "tenant_entitled",
                            "capability" },
  capability = "alerts.view",
}
