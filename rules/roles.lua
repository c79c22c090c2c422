-- Capabilities, and the roles that grant them. A role lists capabilities ("*" for all) and
-- may include other roles.

capabilities {
  "policy.view", "policy.edit", "policy.delete",
  "policy_version.view", "policy_version.restore", "policy_version.delete",
  "backup.view", "backup.create", "backup.delete",
  "backup_schedule.view", "backup_schedule.manage",
  "restore.view", "restore.run",
  "finding.view", "finding.manage",
  "inventory.view", "inventory.manage",
  "entra_group.view",
  "provider.manage",
  "operations.view",
  "alerts.view",
}

-- sees, never acts
role "readonly" {
  "policy.view", "policy_version.view", "backup.view", "backup_schedule.view",
  "restore.view", "finding.view", "inventory.view", "entra_group.view",
  "operations.view", "alerts.view",
}

-- runs the day-to-day: edits, backups, restores; deletes nothing, manages no connections
role "operator" {
  includes = "readonly",
  "policy.edit", "policy_version.restore", "backup.create", "backup_schedule.manage",
  "restore.run", "finding.manage", "inventory.manage",
}

-- owns the workspace: everything
role "owner" { "*" }
