"""The ground floor: vocabulary every stage shares. Imports no stage and no flow."""
