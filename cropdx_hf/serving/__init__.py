"""The Space's server side: the service (models, diagnosis, metrics), the REST API and page rendering."""
