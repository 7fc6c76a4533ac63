"""The load step: delete what the plan says, safely, with a ledger; and restore."""
