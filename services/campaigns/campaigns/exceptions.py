"""Errors the campaigns service raises over RPC (none yet beyond crm_common's)."""
