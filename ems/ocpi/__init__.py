"""OCPI 2.2.1 wire types for the EMS acting as an SCSP: schemas, DateTime handling, status codes.

Transport-independent: the FastAPI routes live in ``api/ocpi/v2_2_1``; this package only
describes and validates what goes over the wire.
"""
