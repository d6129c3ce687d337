"""Mechanism shared by the CRM services: configuration, database sessions,
the transactional outbox, the event envelope, errors, logging and test helpers.

Nothing here models a business entity: services own their models.
"""
