"""Request and response schemas: one per resource, driving validation,
serialization checks and the OpenAPI document alike."""
