"""OCI distribution client (httpx, async) and registry extraction into DataFrames."""
