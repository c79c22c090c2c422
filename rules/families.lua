-- The first slice: tenant-owned model families and every access path to them.
-- A path written as `name = { capability = "..." }` gets the canonical defaults: anchored on
-- the route tenant, workspace and tenant required, capability checked after scope, 404 when
-- not entitled, 403 when the capability is missing. See rules/README.md.

family "Policy" {
  table = "policies",
  primary_surface = "PolicyResource",
  search_posture = "disabled",
  action_surface_status = "declared",
  notes = "Search stays disabled until parity with the index scope is proven.",
  paths = {
    index            = { capability = "policy.view" },
    detail           = { capability = "policy.view" },
    row_action       = { capability = "policy.edit" },
    bulk_action      = { capability = "policy.delete" },
    -- the policies linked from an inventory item's relation manager
    relation_manager = { owner = "InventoryItem", via = "inventory_item_id",
                         capability = "policy.view" },
  },
  fixture = { display_name = "fixture policy", policy_type = "deviceConfiguration",
              platform = "windows10" },
}

family "PolicyVersion" {
  table = "policy_versions",
  primary_surface = "PolicyVersionResource",
  search_posture = "disabled",
  action_surface_status = "declared",
  paths = {
    index            = { capability = "policy_version.view" },
    detail           = { capability = "policy_version.view" },
    row_action       = { capability = "policy_version.restore" },
    bulk_action      = { capability = "policy_version.delete" },
    relation_manager = { owner = "Policy", via = "policy_id",
                         capability = "policy_version.view" },
  },
  fixture = { version_number = 1, snapshot = "{}" },
}

family "BackupSchedule" {
  table = "backup_schedules",
  primary_surface = "BackupScheduleResource",
  search_posture = "not_applicable",
  action_surface_status = "declared",
  paths = {
    index       = { capability = "backup_schedule.view" },
    detail      = { capability = "backup_schedule.view" },
    row_action  = { capability = "backup_schedule.manage" },
    bulk_action = { capability = "backup_schedule.manage" },
  },
  fixture = { name = "fixture schedule", cron = "0 3 * * *", enabled = 1 },
}

family "BackupSet" {
  table = "backup_sets",
  primary_surface = "BackupSetResource",
  search_posture = "not_applicable",
  action_surface_status = "declared",
  notes = "Backup items are reached through this family (residual BackupItem).",
  paths = {
    index            = { capability = "backup.view" },
    detail           = { capability = "backup.view" },
    row_action       = { capability = "backup.create" },
    bulk_action      = { capability = "backup.delete" },
    -- the backup sets a schedule produced
    relation_manager = { owner = "BackupSchedule", via = "backup_schedule_id",
                         capability = "backup.view" },
  },
  fixture = { name = "fixture backup", status = "completed", item_count = 0 },
}

family "RestoreRun" {
  table = "restore_runs",
  primary_surface = "RestoreRunResource",
  search_posture = "not_applicable",
  action_surface_status = "baseline_exemption",
  action_surface_reason = "Restore actions keep their legacy surface until the restore "
                       .. "retrofit; scope is still enforced on every path.",
  paths = {
    index       = { capability = "restore.view" },
    detail      = { capability = "restore.view" },
    row_action  = { capability = "restore.run" },
    bulk_action = { capability = "restore.run" },
  },
  fixture = { status = "queued" },
}

family "Finding" {
  table = "findings",
  primary_surface = "FindingResource",
  search_posture = "not_applicable",
  action_surface_status = "declared",
  paths = {
    index       = { capability = "finding.view" },
    detail      = { capability = "finding.view" },
    row_action  = { capability = "finding.manage" },
    bulk_action = { capability = "finding.manage" },
  },
  fixture = { title = "fixture finding", severity = "low", status = "open" },
}

family "InventoryItem" {
  table = "inventory_items",
  primary_surface = "InventoryItemResource",
  search_posture = "not_applicable",
  action_surface_status = "declared",
  paths = {
    index       = { capability = "inventory.view" },
    detail      = { capability = "inventory.view" },
    row_action  = { capability = "inventory.manage" },
    bulk_action = { capability = "inventory.manage" },
  },
  fixture = { display_name = "fixture item", item_type = "device" },
}

family "EntraGroup" {
  table = "entra_groups",
  primary_surface = "EntraGroupResource",
  search_posture = "scoped",
  search_columns = { "display_name", "mail_nickname" },
  action_surface_status = "declared",
  paths = {
    index            = { capability = "entra_group.view" },
    detail           = { capability = "entra_group.view" },
    global_search    = { capability = "entra_group.view" },
    -- opened from a link without a route tenant: the tenant comes from the record itself
    canonical_viewer = { capability = "entra_group.view" },
  },
  fixture = { display_name = "fixture group", mail_nickname = "fixture-group" },
}
