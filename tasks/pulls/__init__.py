"""Pull records: the registry's notifications of manifest pulls, received and stored."""
