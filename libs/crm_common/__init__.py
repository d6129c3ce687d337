"""Mechanism shared by the CRM services: configuration, database sessions,
the transactional outbox, the event envelope, errors, logging and test helpers.

Nothing here models a business entity: services own their models.
"""
import warnings

# eventlet warns on import that it is deprecated, in eight plain-text lines
# on stderr of every process: the only lines not in JSON. nameko 2.14 runs on
# it, so the notice tells an operator nothing: it is dropped for every process
# that imports this package before eventlet (crm_common.serve does).
warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated")
