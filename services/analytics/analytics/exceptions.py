"""Errors the analytics service raises over RPC (none yet beyond crm_common's)."""
