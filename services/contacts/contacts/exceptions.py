"""Errors the contacts service raises over RPC (none yet beyond crm_common's)."""
