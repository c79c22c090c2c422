capabilities { "invoice.view", "invoice.edit", "invoice.delete" }

role "viewer" { "invoice.view" }
role "editor" { includes = "viewer", "invoice.edit" }
role "admin"  { "*" }
