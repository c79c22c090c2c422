-- Tenant-owned tables outside the first slice, kept explicit so none is rediscovered by
-- accident. The rollout still binds them to their workspace.

residual "BackupItem" {
  table = "backup_items",
  likely_surface = "BackupSet relation manager",
  why_not_in_first_slice = "Reached only through the backup-set relation manager.",
}

residual "InventoryLink" {
  table = "inventory_links",
  likely_surface = "InventoryItem detail",
  why_not_in_first_slice = "Inherits its scope through inventory items.",
}

residual "EntraRoleDefinition" {
  table = "entra_role_definitions",
  likely_surface = "Role reports and findings",
  why_not_in_first_slice = "Read only indirectly, through role reports and findings.",
}

residual "TenantPermission" {
  table = "tenant_permissions",
  likely_surface = "Permission diagnostics and onboarding",
  why_not_in_first_slice = "Reached through permission diagnostics and onboarding only.",
}
