"""regsweep stages: plain, typed code per stage plus thin Prefect task wrappers."""
