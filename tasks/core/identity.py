"""What regsweep calls itself on the wire.

Every request to a registry or a vendor API sends this User-Agent; `regsweep pulls serve`
never counts a request carrying it as a pull (`tasks.pulls.service.OWN_USER_AGENT`)."""

USER_AGENT = "regsweep (registry cleanup; its reads are not pulls)"
