"""Pure retention policy: configuration model, keep rules and the deletion plan."""
