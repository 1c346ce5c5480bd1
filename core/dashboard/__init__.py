"""The live dashboard: event schemas, hub, web app and server."""
