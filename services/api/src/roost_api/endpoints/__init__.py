"""The api's endpoints, a module per resource; each module's ROUTES are its routes."""
