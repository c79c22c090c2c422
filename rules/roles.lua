-- Capabilities, and the roles that grant them.

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

local views = {
  "policy.view", "policy_version.view", "backup.view", "backup_schedule.view",
  "restore.view", "finding.view", "inventory.view", "entra_group.view",
  "operations.view", "alerts.view",
}

local function with(base, extra)
  local all = {}
  for _, c in ipairs(base) do all[#all + 1] = c end
  for _, c in ipairs(extra) do all[#all + 1] = c end
  return all
end

-- owns the workspace: everything
role "owner" { "*" }

-- runs the day-to-day: edits, backups, restores; deletes nothing and manages no connections
role "operator" (with(views, {
  "policy.edit", "policy_version.restore", "backup.create", "backup_schedule.manage",
  "restore.run", "finding.manage", "inventory.manage",
}))

-- sees, never acts
role "readonly" (views)
