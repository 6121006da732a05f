"""ACME (RFC 8555) for the ACME provisioners: JWS requests, records, challenge validation."""
